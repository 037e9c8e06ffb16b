"""insightface verification sets (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, ...): read and write.

A `.bin` file is a pickle of `(bins, issame_list)`: `bins` holds 2N encoded images (JPEG or PNG;
pair i is images 2i and 2i+1), `issame_list` N booleans. The released files were written by
Python 2 (images as `str`, which Python 3 reads back as `bytes` with `encoding="bytes"`); files
written by Python 3 hold `bytes`, and under pickle protocols 0-2 Python 3 spells each `bytes`
object as a call `_codecs.encode(text, "latin1")`.

A pickle can run any callable it names, so this module never uses `pickle.load` directly: the
unpickler below resolves only the three names such files need, each replaced by a checked
stand-in that can only build bytes (see `_SAFE_GLOBALS`). Anything else (`os.system`,
`subprocess.Popen`, `numpy` reconstructors, ...) is refused before it can be called.
"""
import io
import os
import pickle
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..errors import DataError

# ---------------------------------------------------------------- restricted unpickling


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """Stand-in for `_codecs.encode` as Python 3 pickles bytes (protocol <= 2): str -> latin-1 bytes only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed as (str, 'latin1'), got encoding {encoding!r}")
    return text.encode("latin-1", errors)


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


# (module, name) exactly as written in the pickle: an overridden find_class sees Python 2's
# `__builtin__` (which Python 3 itself writes for protocols < 3) unmapped.
_SAFE_GLOBALS = {
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _bytes_from,
    ("__builtin__", "bytes"): _bytes_from,
    ("builtins", "bytearray"): _bytearray_from,
    ("__builtin__", "bytearray"): _bytearray_from,
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


def _restricted_loads(data):
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
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, UnicodeDecodeError,
            OverflowError, MemoryError) as err:
        raise DataError(f"{path}: corrupt .bin file ({type(err).__name__}: {err})") from None
    return _validate(obj, path)


def decode_image(data, image_size=112):
    """Encoded bytes -> uint8 image_size x image_size x 3 RGB, or None when undecodable."""
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    if img.shape[0] != image_size or img.shape[1] != image_size:
        shrink = img.shape[0] > image_size or img.shape[1] > image_size
        img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_images(bins, image_size=112, path="<memory>", workers=None, indices=None):
    """List of encoded images -> uint8 N x image_size x image_size x 3 RGB (threads: cv2 releases the GIL).

    indices: the images' positions in the file, for error messages when `bins` is a subset.
    """
    out = np.empty((len(bins), image_size, image_size, 3), dtype=np.uint8)
    failed = []

    def work(i):
        img = decode_image(bins[i], image_size)
        if img is None:
            failed.append(i)
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
            f"{path}: image {first} (pair {first // 2}) cannot be decoded"
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
    return decode_images(bins, image_size, path=os.fspath(path)), issame


# ---------------------------------------------------------------- writing


def encode_image(img, quality=95):
    """uint8 H x W x 3 RGB -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR),
                           [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise DataError("cannot encode image as JPEG")
    return buf.tobytes()


def write_bin_records(path, bins, issame):
    """Write already encoded images and labels as a `.bin` (readable by arcface_torch's load_bin)."""
    bins = [bytes(b) for b in bins]
    issame = [bool(s) for s in np.asarray(issame).reshape(-1)]
    if len(bins) != 2 * len(issame):
        raise DataError(f"{len(bins)} images for {len(issame)} pairs; need exactly 2 images per pair")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        # Protocol 4: plain BINBYTES for images, no globals; readable by Python >= 3.4.
        pickle.dump((bins, issame), f, protocol=4)
    os.replace(tmp, path)


def write_bin(path, images, issame, quality=95):
    """Write uint8 [2N, H, W, 3] RGB faces and N booleans as a JPEG `.bin`."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"write_bin expects uint8 [2N, H, W, 3] images, got {images.dtype} {images.shape}")
    write_bin_records(path, [encode_image(img, quality) for img in images], issame)
