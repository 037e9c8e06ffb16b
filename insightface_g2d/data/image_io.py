"""Image files in and out: decoding untrusted images safely, listing, encoding, writing.

    read_image_file(path)           a file -> uint8 H x W x 3 RGB, or DataError naming the file
    try_decode_image_bytes(data)    (image, None) or (None, reason): for callers that gather failures
    read_photo(path)                read_image_file with the whole-photo size limit
    fit_square(img, size)           H x W x 3 -> size x size x 3 (resized only when needed)
    list_images(root)               image files under a folder, sorted by relative path
    pick_images(inputs, count, seed)  files and folders -> up to `count` images, one per identity first
    encode_image_bytes(img, ext)    uint8 RGB (or grey) -> encoded bytes, or DataError
    save_image_bytes(path, data)    the one image-file writer: atomic, folders made, OSError as it is
    write_image(path, img)          encode and save_image_bytes, or DataError / OutputError naming the file

Decoding untrusted data (files on disk, `.bin` entries, RecordIO payloads): OpenCV allocates
(and libjpeg fills) the size an image header claims before it notices that the data is short: a
3 KB JPEG whose frame header claims 30000x30000 takes 35 s and 5 GB to "decode", and a PNG with a
corrupt chunk length makes OpenCV 4.11 allocate gigabytes. So every decode of user data goes
through :func:`image_bytes_problem` first, a structural check of the header (PNG, JPEG, BMP, WebP,
TIFF; other formats are not decoded) that costs microseconds, and `cv2.error` (OpenCV's own size limit, corrupt data) becomes a DataError naming
the file instead of a traceback. The decoders take `max_pixels`: MAX_IMAGE_PIXELS by default,
MAX_PHOTO_PIXELS for whole photos.
"""
import io
import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..fileio import atomic_open, write_error

# Decoded-size limits for untrusted images: faces and dataset images (aligned faces are 112x112),
# and whole photos (g2d-mask on camera pictures). The cost of a hostile header is about the
# claimed size: 64 Mpixel is ~1 s and ~200 MB, 900 Mpixel 35 s and 5 GB.
MAX_IMAGE_PIXELS = 1 << 24  # 16.7 Mpixel, e.g. 4096 x 4096
MAX_PHOTO_PIXELS = 1 << 26  # 67 Mpixel, e.g. a 48 Mpixel 8000 x 6000 phone photo
# File name extensions of the images the project reads from folders (ImageFolderFaces, g2d-mask).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT/JPG/DAC)
_JPEG_NO_LENGTH = frozenset(range(0xD0, 0xD9)) | {0x01}  # RSTn, SOI, TEM: markers without a length field
_JPEG_NEXT_MARKER = re.compile(rb"[^\xff]*\xff+(.)", re.S)
# OpenCV >= 4.10 decodes straight to RGB (same pixels as BGR decode + cvtColor, one pass less)
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _png_problem(data, max_pixels):
    """Why `data` (PNG bytes) must not reach the decoder, or None: chunk walk up to IEND."""
    n = len(data)
    if n < 33 or bytes(data[12:16]) != b"IHDR":
        return "a PNG without its IHDR header chunk"
    width, height = struct.unpack_from(">II", data, 16)
    if not width or not height or width * height > max_pixels:
        return f"a PNG that claims {width}x{height} pixels (limit {max_pixels} pixels)"
    pos = 8
    while pos + 12 <= n:
        length = struct.unpack_from(">I", data, pos)[0]
        if pos + 12 + length > n:
            return f"a PNG whose chunk at byte {pos} ({length} bytes) runs past the end of the data"
        if bytes(data[pos + 4:pos + 8]) == b"IEND":
            return None
        pos += 12 + length
    return "a PNG that ends before its IEND chunk (truncated)"


def _jpeg_problem(data, max_pixels):
    """Why `data` (JPEG bytes) must not reach the decoder, or None: frame size from the SOF segment.

    Walks the marker segments the way libjpeg does, including its tolerance of junk: bytes that
    are not 0xFF between segments are skipped (libjpeg warns "extraneous bytes before marker" and
    goes on), so junk cannot hide a frame header from this check.
    """
    n, pos = len(data), 2
    while True:
        found = _JPEG_NEXT_MARKER.match(data, pos)  # junk, then 0xFF and any fill bytes, then the marker
        if found is None:
            return None  # no frame header at all: the decoder fails without allocating
        pos = found.end()
        marker = data[pos - 1]
        if marker == 0x00 or marker in _JPEG_NO_LENGTH:  # stuffed 0xFF00 (junk), RSTn, SOI, TEM
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header: fails
            return None
        if pos + 2 > n:
            return None
        if marker in _JPEG_SOF:
            if pos + 7 > n:
                return "a JPEG whose frame header is cut short"
            height, width = struct.unpack_from(">HH", data, pos + 3)
            if width * height > max_pixels:
                return f"a JPEG that claims {width}x{height} pixels (limit {max_pixels} pixels)"
            return None  # libjpeg refuses a second frame header
        length = struct.unpack_from(">H", data, pos)[0]
        if length < 2:
            return None  # libjpeg: "bogus marker length"
        pos += length


def _bmp_size(data):
    """(width, height) a BMP header claims, or None when the header is cut short."""
    if len(data) < 26:
        return None
    if struct.unpack_from("<I", data, 14)[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack_from("<HH", data, 18)
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)  # a negative height: rows stored top-down


def _webp_size(data):
    """(width, height) a WebP header claims (VP8, VP8L or VP8X chunk), or None when it has none."""
    chunk = bytes(data[12:16])
    if chunk == b"VP8 " and len(data) >= 30 and bytes(data[23:26]) == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = struct.unpack_from("<I", data, 21)[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(bytes(data[24:27]), "little") + 1, int.from_bytes(bytes(data[27:30]), "little") + 1
    return None


def _tiff_size(data):
    """(width, height) of a TIFF's first image (tags 256 and 257 of its first IFD), or None."""
    order = "<" if bytes(data[:2]) == b"II" else ">"
    n = len(data)
    if n < 8:
        return None
    ifd = struct.unpack_from(order + "I", data, 4)[0]
    if ifd + 2 > n:
        return None
    sizes = {}
    for i in range(struct.unpack_from(order + "H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if entry + 12 > n:
            return None
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        if tag in (256, 257) and kind in (3, 4):  # SHORT or LONG, held in the entry itself
            sizes[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), data, entry + 8)[0]
    return (sizes[256], sizes[257]) if len(sizes) == 2 else None


# Formats decoded after their header's claimed size is checked: (name, signature test, size reader).
_SIZED_FORMATS = (
    ("BMP", lambda head: head[:2] == b"BM", _bmp_size),
    ("WebP", lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP", _webp_size),
    ("TIFF", lambda head: head[:4] in (b"II*\x00", b"MM\x00*"), _tiff_size),
)
READ_FORMATS = "PNG, JPEG, BMP, WebP, TIFF"


def image_bytes_problem(data, max_pixels=MAX_IMAGE_PIXELS):
    """Cheap structural check of encoded image bytes before decoding: a reason string, or None.

    Refuses PNGs whose chunk lengths run past the data or that lack IHDR/IEND, headers of any
    format that claim more than `max_pixels` pixels (a corrupt or hostile size field would
    otherwise make the decoder allocate and fill gigabytes: a 20000 x 20000 TIFF of a few KB
    decodes to 1.2 GB), BMP/WebP/TIFF data without a readable size, and formats other than
    READ_FORMATS (OpenCV reads more, whose headers are not checked here).
    """
    data = memoryview(data).cast("B")
    head = bytes(data[:16])
    if head[:8] == _PNG_SIGNATURE:
        return _png_problem(data, max_pixels)
    if head[:2] == b"\xff\xd8":
        return _jpeg_problem(data, max_pixels)
    for name, matches, size_of in _SIZED_FORMATS:
        if matches(head):
            size = size_of(data)
            if size is None:
                return f"a {name} whose header gives no image size (cut short or damaged)"
            width, height = size
            if not width or not height or width * height > max_pixels:
                return f"a {name} that claims {width}x{height} pixels (limit {max_pixels} pixels)"
            return None
    return f"not a decodable image ({len(data)} bytes in no image format the kit reads: {READ_FORMATS})"


def try_decode_image_bytes(data, max_pixels=MAX_IMAGE_PIXELS):
    """Encoded bytes -> (uint8 H x W x 3 RGB, None), or (None, reason) when they must not or cannot
    be decoded. Grey and alpha images come back as 3-channel RGB."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if not buf.size:
        return None, "empty data"
    problem = image_bytes_problem(buf, max_pixels)
    if problem and problem.startswith("not a decodable image"):
        return None, problem
    if problem:
        return None, f"{problem}; refused before decoding (corrupt or hostile header)"
    try:
        img = cv2.imdecode(buf, _IMREAD_RGB or cv2.IMREAD_COLOR)
    except cv2.error as err:  # e.g. more than OpenCV's own 2**30-pixel limit
        msg = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        return None, f"OpenCV refused it ({msg.strip()[:160]})"
    if img is None:
        return None, f"not a decodable image ({buf.size} bytes in no image format OpenCV reads)"
    if img.ndim != 3 or img.shape[2] != 3:
        return None, f"decoded to an unexpected shape {img.shape}"
    return (img if _IMREAD_RGB else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)), None


def read_image_file(path, what="image", hint="replace or delete the file", max_pixels=MAX_IMAGE_PIXELS):
    """Read an image file -> uint8 H x W x 3 RGB (read bytes, check the header, then decode).

    Raises DataError "cannot read <what> <path>: <reason>; <hint>" (one line) when the file is
    missing, unreadable, empty, hostile or not a decodable image.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        reason = "file not found" if isinstance(err, FileNotFoundError) else (err.strerror or str(err))
        raise DataError(f"cannot read {what} {path}: {reason}" + (f"; {hint}" if hint else "")) from None
    img, reason = try_decode_image_bytes(data, max_pixels)
    if img is None:
        raise DataError(f"cannot read {what} {path}: {reason}" + (f"; {hint}" if hint else ""))
    return img


def fit_square(img, size):
    """uint8 H x W x 3 -> size x size x 3: unchanged when already that size, else resized
    (INTER_AREA when shrinking, INTER_LINEAR when enlarging)."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_photo(path, what="image"):
    """``read_image_file`` for whole photos (camera pictures): limit MAX_PHOTO_PIXELS, no hint."""
    return read_image_file(path, what=what, hint="", max_pixels=MAX_PHOTO_PIXELS)


def list_images(root):
    """Image files under a folder (recursive), sorted by their '/'-separated relative path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"input folder not found: {root}")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def pick_images(inputs, count, seed):
    """Up to ``count`` (image path, folder it was found in or None) from image files and folders.

    In a folder of identity sub-folders: one image per identity first (identities in a seeded
    random order), then second images, and so on, so a few faces show many people.
    """
    picked = []
    for item in inputs:
        p = Path(item)
        if p.is_file():
            picked.append((p, None))
        elif p.is_dir():
            files = list_images(p)
            if not files:
                raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {p}")
            groups = {}
            for f in files:
                groups.setdefault(f.parent, []).append(f)
            keys = sorted(groups)
            order = np.random.default_rng(seed).permutation(len(keys))
            rank = 0
            while len(picked) < count and rank < max(len(g) for g in groups.values()):
                picked.extend((groups[keys[i]][rank], p) for i in order if rank < len(groups[keys[i]]))
                rank += 1
        else:
            raise DataError(f"input not found: {p}")
    return picked[:count]


def encode_image_bytes(img, ext=".png", quality=95, png_compression=None, colors=None):
    """uint8 RGB [H, W, 3] (or grey [H, W]) -> the bytes of an ``ext`` file (".jpg", ".png", ...).

    JPEG at ``quality``; PNG at OpenCV's default compression unless ``png_compression`` (0-9).
    ``colors``: a palette PNG of that many colours instead (median cut, no dithering, Pillow's
    optimised encoder): about 3x smaller, slightly posterised; for documentation images.
    DataError when it cannot be encoded (an unknown extension, an unsupported array, no Pillow).
    """
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if colors:
        return _palette_png(img, colors, ext)
    arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".png" and png_compression is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    else:
        params = []
    try:
        ok, buf = cv2.imencode(ext, arr, params)
    except cv2.error:
        ok = False
    if not ok:
        raise DataError(f"cannot encode a {img.dtype} {tuple(img.shape)} image as {ext or 'a file without extension'}: "
                        f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    return buf.tobytes()


def _palette_png(img, colors, ext):
    if ext != ".png":
        raise DataError(f"a palette of colours needs a .png file, not {ext or 'a file without extension'}")
    try:
        from PIL import Image
    except ImportError:
        raise DataError("a palette PNG needs Pillow: pip install pillow") from None
    out = io.BytesIO()
    Image.fromarray(img).quantize(colors=int(colors), method=Image.Quantize.MEDIANCUT,
                                  dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_image_bytes(path, data, within=None):
    """Write encoded image bytes to `path`: the one image-file writer of the project.

    Atomic (fileio.atomic_open: a temporary file beside `path`, renamed over it when complete), so
    an interrupted or failed write never leaves a partial image; folders are made (those below
    `within`, the folder the user named, never through a symbolic link). A failed write is the
    OSError itself, with its errno and file name, for callers that report those (a training run's
    output folder); `write_image` turns it into the one-line OutputError.
    """
    with atomic_open(path, within=within) as f:
        f.write(data)
    return path


def write_image(path, img, quality=95, png_compression=None, colors=None, within=None, option="--out"):
    """Encode uint8 RGB (or grey) ``img`` in the format of ``path``'s extension (see
    encode_image_bytes) and save it atomically (see save_image_bytes). DataError when it cannot be
    encoded; OutputError naming the file (and `option`, the command-line option of the output) when
    it cannot be written."""
    path = Path(path)
    data = encode_image_bytes(img, path.suffix, quality, png_compression, colors)
    try:
        save_image_bytes(path, data, within)
    except OSError as err:
        raise write_error(err, path, "image", option=option) from None
    return path
