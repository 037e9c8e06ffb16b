"""insightface verification sets (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, ...): read and write.

A `.bin` file is a pickle of `(bins, issame_list)`: `bins` holds 2N encoded images (JPEG or PNG;
pair i is images 2i and 2i+1), `issame_list` N booleans. The released files were written by
Python 2 (images as `str`, which Python 3 reads back as `bytes` with `encoding="bytes"`); files
written by Python 3 hold `bytes`, and under pickle protocols 0-2 Python 3 spells each `bytes`
object as a call `_codecs.encode(text, "latin1")`.

A pickle can run any callable it names, so this module never uses `pickle.load` directly: the
unpickler below resolves only the three names such files need, each replaced by a checked
stand-in that can only build bytes (see `_SAFE_GLOBALS`). Anything else (`os.system`,
`subprocess.Popen`, `numpy` reconstructors, ...) is refused before it can be called. The
stand-ins refuse BUILD (which would otherwise set attributes on them), and `_prescan` walks the
opcodes first, refusing memo indices and lengths that would make CPython's unpickler allocate
gigabytes before anything is refused. Images are decoded through `data.image_io`, which refuses
headers claiming huge sizes before OpenCV allocates them.
"""
import io
import os
import pickle
import pickletools
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..data.image_io import encode_image_bytes, fit_square, try_decode_image_bytes
from ..fileio import atomic_open, write_errors
from ..errors import DataError

# ---------------------------------------------------------------- restricted unpickling


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """Stand-in for `_codecs.encode` as Python 3 pickles bytes (protocol <= 2): str -> latin-1 bytes only."""
    if (not isinstance(text, str) or not isinstance(encoding, str)
            or encoding.lower().replace("-", "").replace("_", "") != "latin1"):
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed as (str, 'latin1'), got encoding {encoding!r}")
    if errors != "strict":  # a named handler would be looked up in the codecs registry
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed with errors='strict', got {errors!r}")
    return text.encode("latin-1")


def _bytes_from(*args):
    """Stand-in for `bytes(...)`: only `bytes()` and `bytes(bytes_like)`; never `bytes(huge_int)`."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise pickle.UnpicklingError("bytes(...) in a .bin pickle may only copy bytes")


def _bytearray_from(*args):
    """Stand-in for `bytearray(...)`: `bytearray()`, `bytearray(bytes_like)`, `bytearray(str, 'latin-1')`."""
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str):
        return bytearray(_latin1_encode(args[0], args[1]))
    raise pickle.UnpicklingError("bytearray(...) in a .bin pickle may only copy bytes")


class _StandIn:
    """What `find_class` hands the unpickler: callable like the stand-in function, and nothing else.

    The BUILD opcode may target any object on the stack, globals included, and would set
    attributes on a plain function (e.g. its `__defaults__`, for every later load). These objects
    have no instance dict (`__slots__ = ()`) and refuse BUILD in `__setstate__`.
    """

    __slots__ = ()
    _fn = None  # the stand-in function (set by each subclass)

    def __call__(self, *args):
        return type(self)._fn(*args)

    def __setstate__(self, state):
        raise pickle.UnpicklingError("BUILD on an allowed global (codecs.encode/bytes/bytearray) is not allowed")


def _stand_in(fn):
    return type(f"_StandIn_{fn.__name__}", (_StandIn,), {"__slots__": (), "_fn": staticmethod(fn)})()


_ENCODE, _BYTES, _BYTEARRAY = _stand_in(_latin1_encode), _stand_in(_bytes_from), _stand_in(_bytearray_from)
# (module, name) exactly as written in the pickle: an overridden find_class sees Python 2's
# `__builtin__` (which Python 3 itself writes for protocols < 3) unmapped.
_SAFE_GLOBALS = {
    ("_codecs", "encode"): _ENCODE,
    ("builtins", "bytes"): _BYTES,
    ("__builtin__", "bytes"): _BYTES,
    ("builtins", "bytearray"): _BYTEARRAY,
    ("__builtin__", "bytearray"): _BYTEARRAY,
}


class _BinUnpickler(pickle.Unpickler):
    """Unpickler that builds only lists, tuples, bytes, bools and ints."""

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


# Opcode argument layouts for the pre-scan, by opcode byte: None (no argument), a fixed size in
# bytes, or one of the pickletools length kinds (line, 1/4/8-byte length prefix); GLOBAL/INST take two lines.
_ARG_LAYOUT = [False] * 256  # False: not an opcode
for _op in pickletools.opcodes:
    _ARG_LAYOUT[ord(_op.code)] = None if _op.arg is None else (
        "pair" if _op.arg.name == "stringnl_noescape_pair" else _op.arg.n)
_LEN_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: ("<B", 1), pickletools.TAKEN_FROM_ARGUMENT4: ("<i", 4),
               pickletools.TAKEN_FROM_ARGUMENT4U: ("<I", 4), pickletools.TAKEN_FROM_ARGUMENT8U: ("<Q", 8)}
_PUT, _BINPUT, _LONG_BINPUT, _FRAME, _STOP = b"p"[0], b"q"[0], b"r"[0], b"\x95"[0], b"."[0]


def _prescan(data):
    """Walk the opcodes of a pickle without running it; UnpicklingError when it is unsafe to load.

    CPython's C unpickler grows its memo table to twice any index stored into (PUT/BINPUT/
    LONG_BINPUT) and zeroes it, before `find_class` has a say: a 12-byte pickle storing into slot
    2**28 costs 4 GB. Picklers number memo entries 0, 1, 2, ... as objects appear, so an index
    can never exceed the number of opcodes before it; anything larger is refused. Also refused:
    lengths (bytes, strings, frames) claiming more bytes than the file holds (the unpickler would
    allocate the claimed size before reading), unknown opcodes, and data ending before STOP.
    Cost: linear in the number of opcodes; argument bytes are skipped, never copied.
    """
    n, pos, count = len(data), 0, 0
    unpack_from, find = struct.unpack_from, data.find
    while pos < n:
        code = data[pos]
        layout = _ARG_LAYOUT[code]
        start, pos = pos, pos + 1
        if layout is None:
            if code == _STOP:
                return
        elif layout is False:
            raise pickle.UnpicklingError(f"unknown opcode 0x{code:02x} at byte {start}")
        elif layout == -1 or layout == "pair":  # text argument up to a newline (two lines for GLOBAL/INST)
            end = find(b"\n", pos)
            if layout == "pair" and end >= 0:
                end = find(b"\n", end + 1)
            if end < 0:
                raise pickle.UnpicklingError(f"opcode at byte {start}: its text argument has no end of line")
            if code == _PUT:
                text = data[pos:end]
                if not text.isdigit() or len(text) > 18 or int(text) > count:
                    raise pickle.UnpicklingError(f"memo index {text[:20]!r} at byte {start} is out of range")
            pos = end + 1
        elif layout >= 0:  # fixed-size argument
            if pos + layout > n:
                break
            if code == _LONG_BINPUT or code == _BINPUT:
                index = data[pos] if code == _BINPUT else unpack_from("<I", data, pos)[0]
                if index > count:
                    raise pickle.UnpicklingError(
                        f"memo index {index} at byte {start} is larger than the {count} opcodes before it")
            elif code == _FRAME and unpack_from("<Q", data, pos)[0] > n - pos - 8:
                raise pickle.UnpicklingError(f"frame at byte {start} claims more bytes than the file holds")
            pos += layout
        else:  # length-prefixed argument
            fmt, size = _LEN_PREFIX[layout]
            if pos + size > n:
                break
            length = unpack_from(fmt, data, pos)[0]
            pos += size
            if length < 0 or length > n - pos:
                raise pickle.UnpicklingError(
                    f"opcode at byte {start} claims {length} bytes, the file has {n - pos} left")
            pos += length
        count += 1
    raise pickle.UnpicklingError("the pickle ends before its STOP opcode (truncated file)")


def _restricted_loads(data):
    _prescan(data)
    # encoding="bytes": Python 2 `str` (the released files' images) comes back as bytes.
    return _BinUnpickler(io.BytesIO(data), encoding="bytes").load()


# ---------------------------------------------------------------- reading


def _validate(obj, path):
    """(bins, issame) pickle object -> (list of bytes, bool ndarray); DataError on any other shape."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{path}: expected a pickled (bins, issame_list) pair, got {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise DataError(f"{path}: bins and issame_list must be lists, got {type(bins).__name__}, {type(issame).__name__}")
    for i, b in enumerate(bins):
        if not isinstance(b, (bytes, bytearray)):
            raise DataError(f"{path}: image {i} is a {type(b).__name__}, expected encoded image bytes")
    flags = []
    for i, s in enumerate(issame):
        # bool is a subclass of int; ints 0/1 appear in some hand-written files.
        if not isinstance(s, int) or s not in (0, 1):
            raise DataError(f"{path}: issame_list[{i}] is {s!r}, expected True/False")
        flags.append(bool(s))
    if len(bins) != 2 * len(flags):
        raise DataError(
            f"{path}: {len(bins)} images for {len(flags)} pairs; a .bin needs exactly 2 images per pair"
        )
    if not flags:
        raise DataError(f"{path}: the verification set is empty")
    return [bytes(b) for b in bins], np.asarray(flags, dtype=bool)


def read_bin_records(path):
    """Encoded images and labels of a `.bin`, without decoding: (list of 2N bytes, bool ndarray N)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: verification file not found (expected an insightface .bin such as lfw.bin)")
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _restricted_loads(data)
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: not a plain insightface .bin pickle ({err}); refusing to load it") from None
    except Exception as err:  # noqa: BLE001 - whatever a corrupt pickle makes the unpickler raise
        raise DataError(f"{path}: corrupt .bin file ({type(err).__name__}: {err})") from None
    return _validate(obj, path)


def _decode(data, image_size):
    """(uint8 image_size x image_size x 3 RGB, None) or (None, why it cannot be decoded)."""
    img, reason = try_decode_image_bytes(data)
    return (None, reason) if img is None else (fit_square(img, image_size), None)


def decode_image(data, image_size=112):
    """Encoded bytes -> uint8 image_size x image_size x 3 RGB, or None when undecodable or refused
    (headers claiming huge sizes are refused before decoding, see data.image_io)."""
    return _decode(data, image_size)[0]


def decode_images(bins, image_size=112, path="<memory>", workers=None, indices=None):
    """List of encoded images -> uint8 N x image_size x image_size x 3 RGB (threads: cv2 releases the GIL).

    indices: the images' positions in the file, for error messages when `bins` is a subset.
    """
    out = np.empty((len(bins), image_size, image_size, 3), dtype=np.uint8)
    failed = {}

    def work(i):
        img, reason = _decode(bins[i], image_size)
        if img is None:
            failed[i] = reason
        else:
            out[i] = img

    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(bins) < 64:
        for i in range(len(bins)):
            work(i)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(len(bins)), chunksize=64))
    if failed:
        first = int(indices[min(failed)]) if indices is not None else min(failed)
        raise DataError(
            f"{path}: image {first} (pair {first // 2}) cannot be decoded ({failed[min(failed)]})"
            + (f" ({len(failed)} undecodable images in all)" if len(failed) > 1 else "")
            + "; the file is corrupt or not an insightface .bin"
        )
    return out


def load_bin(path, image_size=112):
    """Read a verification `.bin`.

    Returns (images uint8 [2N, image_size, image_size, 3] RGB, issame bool [N]); pair i is
    images 2i and 2i+1. Images not already image_size x image_size are resized to it.
    """
    bins, issame = read_bin_records(path)
    _check_decoded_size(path, len(bins), image_size)
    return decode_images(bins, image_size, path=os.fspath(path)), issame


# Decoded images may outgrow the file (a 5 KB JPEG face is 37 KB decoded), but a pickle can list
# one image millions of times through 2-byte memo references: 20 MB would ask for 376 GB.
_MAX_DECODED_RATIO, _MIN_DECODED_CAP = 256, 2 << 30


def _check_decoded_size(path, count, image_size):
    need = count * image_size * image_size * 3
    file_size = os.path.getsize(path)
    if need > max(_MIN_DECODED_CAP, _MAX_DECODED_RATIO * file_size):
        raise DataError(f"{path}: {count} images of {image_size}x{image_size} would take {need / 2**30:.1f} GiB "
                        f"decoded, from a {file_size}-byte file (it repeats images far more than a real .bin); "
                        "refusing to load it")


# ---------------------------------------------------------------- writing


def encode_image(img, quality=95):
    """uint8 H x W x 3 RGB -> JPEG bytes."""
    return encode_image_bytes(np.ascontiguousarray(img), ".jpg", quality=quality)


def write_bin_records(path, bins, issame):
    """Write already encoded images and labels as a `.bin` (readable by arcface_torch's load_bin)."""
    bins = [bytes(b) for b in bins]
    issame = [bool(s) for s in np.asarray(issame).reshape(-1)]
    if len(bins) != 2 * len(issame):
        raise DataError(f"{len(bins)} images for {len(issame)} pairs; need exactly 2 images per pair")
    with write_errors(path), atomic_open(path) as f:
        # Protocol 4: plain BINBYTES for images, no globals; readable by Python >= 3.4.
        pickle.dump((bins, issame), f, protocol=4)


def write_bin(path, images, issame, quality=95):
    """Write uint8 [2N, H, W, 3] RGB faces and N booleans as a JPEG `.bin`."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"write_bin expects uint8 [2N, H, W, 3] images, got {images.dtype} {images.shape}")
    write_bin_records(path, [encode_image(img, quality) for img in images], issame)
