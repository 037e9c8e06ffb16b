"""mxnet-free reader and writer of mxnet/insightface RecordIO (``train.rec`` + ``train.idx``).

Byte-compatible with ``mx.recordio.MXIndexedRecordIO`` (dmlc-core's RecordIO framing) and with
``mx.recordio.pack / unpack / pack_img / unpack_img``.

File format (all integers little-endian):

* a record on disk is one or more *frames*: uint32 magic ``0xced7230a``, uint32 ``lrec`` (upper 3
  bits: continuation flag ``cflag``, lower 29 bits: length), ``length`` payload bytes, zero padding
  to a multiple of 4 bytes.
* dmlc's writer never lets the magic word appear at a 4-byte-aligned position of a frame's payload:
  wherever it occurs there, the record is cut, the 4 magic bytes are dropped, and the pieces are
  written as frames with cflag 1 (first), 2 (middle), 3 (last); cflag 0 is a record of one frame.
  The reader puts the magic word back between the pieces. Records of 2**29 bytes or more are
  refused (dmlc ``CHECK``s; they are not split).
* ``.idx`` is text, one ``key<TAB>offset`` line per record, offset = byte position of its first frame.
* a record's payload starts with the header struct ``IfQQ`` (flag, label, id, id2; 24 bytes); when
  ``flag > 0`` it is followed by ``flag`` float32 labels (a vector label, and the label field is 0),
  then the image bytes (JPEG/PNG).

Colour order: mxnet's ``pack_img``/``unpack_img`` take and return **BGR** (they call cv2 directly).
This project's faces are **RGB**, so :func:`pack_img` takes RGB and :func:`unpack_img` returns RGB.
The bytes stored are the same: ``pack_img(h, rgb) == mx.recordio.pack_img(h, rgb[..., ::-1])``.
"""
import contextlib
import mmap
import numbers
import os
import struct
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np

from ..fileio import atomic_open, write_errors
from ..errors import DataError
from . import image_io

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_RECORD_BYTES = (1 << 29) - 1
_LEN_MASK = (1 << 29) - 1
_FRAME = struct.Struct("<II")
_HEADER = struct.Struct("<IfQQ")  # same layout as mxnet's native 'IfQQ' (no padding needed)
HEADER_SIZE = _HEADER.size  # 24
# First read of a record when its extent is unknown or huge: big enough for a 112x112 JPEG face.
_FIRST_READ = 1 << 16
_MAX_EXTENT_READ = 1 << 20

IRHeader = namedtuple("IRHeader", ["flag", "label", "id", "id2"])
IRHeader.__doc__ = """Record header. ``label`` is a float, or a float32 array when ``flag > 0``."""

INDEX_HINT = ("build it with `g2d-recordio index {rec}` "
              "(or insightface_g2d.data.recordio.build_index('{rec}'))")


# ----------------------------------------------------------------------------------------- framing
def frame_record(payload):
    """Encode one record into dmlc RecordIO frames, exactly as dmlc's ``RecordIOWriter::WriteRecord``.

    payload: bytes-like. Returns the bytes to append to a ``.rec`` file.
    """
    data = memoryview(payload).cast("B")
    n = len(data)
    if n > MAX_RECORD_BYTES:
        raise DataError(f"record of {n} bytes is too large for RecordIO (limit {MAX_RECORD_BYTES} bytes, "
                        "as in mxnet): store smaller payloads")
    data = bytes(data)
    out = []
    start = 0  # payload position where the current frame begins
    pos = data.find(MAGIC_BYTES)
    while pos >= 0:
        if pos % 4 == 0:
            out.append(_FRAME.pack(MAGIC, ((1 if start == 0 else 2) << 29) | (pos - start)))
            out.append(data[start:pos])
            start = pos + 4
            pos = data.find(MAGIC_BYTES, pos + 4)
        else:
            pos = data.find(MAGIC_BYTES, pos + 1)
    out.append(_FRAME.pack(MAGIC, ((3 if start else 0) << 29) | (n - start)))
    out.append(data[start:])
    out.append(b"\0" * (-n % 4))
    return b"".join(out)


def _pad4(n):
    return (n + 3) & ~3


def _frame_error(what, rec_path, key, offset, fix):
    where = f"{rec_path}" + (f", record key {key}" if key is not None else "") + f" (byte offset {offset})"
    return DataError(f"{where}: {what}; {fix}")


_CORRUPT_FIX = ("the .rec is corrupt or the .idx belongs to another file: re-create the .rec, or "
                "rebuild the index with `g2d-recordio index REC --force`")
_TRUNC_FIX = "the .rec is truncated (interrupted copy/download?): copy or re-pack it again"


def _read_frames(read, offset, size, rec_path, key, first=None):
    """Read a whole record starting at ``offset`` (general path, handles multi-frame records).

    read(offset, n) -> bytes; size: file size; first: bytes already read at ``offset`` (optional).
    Returns the reassembled payload as bytes.
    """
    parts = []
    pos = offset  # file position of the current frame
    buf = first if first is not None else b""
    at = 0  # position of the current frame inside buf (no re-slicing: records may have many frames)
    expect_start = True
    while True:
        if len(buf) - at < 8:
            buf, at = read(pos, _FIRST_READ), 0
            if len(buf) < 8:
                raise _frame_error(f"truncated record: frame header needs 8 bytes, file ends at {size}",
                                   rec_path, key, pos, _TRUNC_FIX)
        magic, lrec = _FRAME.unpack_from(buf, at)
        if magic != MAGIC:
            raise _frame_error(f"wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x})", rec_path, key, pos,
                               _CORRUPT_FIX)
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        if expect_start and cflag not in (0, 1):
            raise _frame_error(f"record starts with a continuation frame (cflag {cflag})", rec_path, key,
                               pos, _CORRUPT_FIX)
        if not expect_start and cflag not in (2, 3):
            raise _frame_error(f"multi-part record interrupted by a frame with cflag {cflag}", rec_path, key,
                               pos, _CORRUPT_FIX)
        if pos + 8 + length > size:  # checked before reading: a corrupt length must not allocate 512 MB
            raise _frame_error(f"truncated record: frame of {length} bytes, file ends at {size}",
                               rec_path, key, pos, _TRUNC_FIX)
        if len(buf) - at < 8 + length:
            have = len(buf) - at
            buf = buf[at:] + read(pos + have, 8 + length - have)
            at = 0
            if len(buf) < 8 + length:
                raise _frame_error(f"truncated record: frame of {length} bytes, file ends at {size}",
                                   rec_path, key, pos, _TRUNC_FIX)
        parts.append(buf[at + 8:at + 8 + length])
        if cflag in (0, 3):
            return parts[0] if len(parts) == 1 else MAGIC_BYTES.join(parts)
        expect_start = False
        step = 8 + _pad4(length)
        pos += step
        at += step


# ------------------------------------------------------------------------------------------ header
def pack(header, payload):
    """mxnet's ``recordio.pack``: header (IRHeader or 4-tuple) + payload bytes -> record bytes.

    A numeric ``label`` gives flag 0; an array-like label gives flag = its size, label field 0, and
    the float32 labels before the payload (the given flag is ignored, as in mxnet).
    """
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        header = header._replace(flag=0)
        prefix = b""
    else:
        label = np.asarray(header.label, dtype=np.float32)
        header = header._replace(flag=label.size, label=0)
        prefix = label.astype("<f4").tobytes()
    return _HEADER.pack(*header) + prefix + bytes(payload)


def unpack(record, where="record"):
    """mxnet's ``recordio.unpack``: record bytes -> (IRHeader, payload bytes).

    With ``flag > 0`` the header's label is a float32 array of ``flag`` values.
    where: text naming the record in error messages (e.g. "train.rec, record key 7").
    """
    header, start = _unpack_header(record, where)
    return header, bytes(memoryview(record)[start:])


def _unpack_header(record, where):
    """(IRHeader, offset of the payload after header and vector label) from record bytes."""
    if len(record) < HEADER_SIZE:
        raise DataError(f"{where}: record has {len(record)} bytes, fewer than the {HEADER_SIZE}-byte header; "
                        "it is not an image record (corrupt file or wrong key?)")
    flag, label, id1, id2 = _HEADER.unpack_from(record, 0)
    start = HEADER_SIZE
    if flag > 0:
        if start + 4 * flag > len(record):
            raise DataError(f"{where}: header flag says {flag} float32 labels ({4 * flag} bytes) but only "
                            f"{len(record) - start} bytes follow the header; the record is corrupt: "
                            "re-create the .rec (or skip bad records: config skip_bad=True / --skip-bad)")
        label = np.frombuffer(record, dtype="<f4", count=flag, offset=start).astype(np.float32)
        start += 4 * flag
    return IRHeader(flag, label, id1, id2), start


# ------------------------------------------------------------------------------------------ images
def decode_image(payload, where="record"):
    """Encoded image bytes -> uint8 [H, W, 3] RGB (grey and alpha images are converted).

    Headers are checked before decoding (image_io), so a hostile size field costs nothing.
    """
    img, reason = image_io.try_decode_image_bytes(payload)
    if img is None:
        raise DataError(f"{where}: payload is {reason}; the record is corrupt or is not an image record "
                        "(re-create the .rec, or skip bad records: config skip_bad=True / --skip-bad)")
    return img


def pack_img(header, img, quality=95, fmt=".jpg"):
    """Encode an **RGB** uint8 [H, W, 3] (or grey [H, W]) image and pack it with ``header``.

    Same bytes as ``mx.recordio.pack_img(header, img[..., ::-1], quality, fmt)`` (mxnet wants BGR).
    quality: JPEG quality 0..100, or PNG compression level 0..9 for fmt='.png' (mxnet's convention).
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise DataError(f"pack_img needs a uint8 [H, W, 3] RGB or [H, W] image, got {img.dtype} {img.shape}")
    png = fmt.lower() == ".png"  # mxnet's convention: `quality` is PNG's compression level there
    return pack(header, image_io.encode_image_bytes(np.ascontiguousarray(img), fmt, quality=quality,
                                                    png_compression=int(quality) if png else None))


def unpack_img(record, where="record"):
    """Record bytes -> (IRHeader, uint8 [H, W, 3] **RGB**).

    Unlike mxnet's ``unpack_img`` (cv2, BGR, ``IMREAD_UNCHANGED`` by default) this always returns
    3-channel RGB: ``unpack_img(r)[1] == mx.recordio.unpack_img(r, 1)[1][..., ::-1]``.
    """
    header, start = _unpack_header(record, where)
    return header, decode_image(memoryview(record)[start:], where)


# ------------------------------------------------------------------------------------------- index
def default_idx_path(rec_path):
    """``train.rec`` -> ``train.idx`` (same folder, same stem)."""
    return Path(rec_path).with_suffix(".idx")


_INT64_LIMITS = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


def _plain_index_text(text, lines):
    """True when ``text`` is lines of ``[-]digits<TAB>[-]digits`` (CR only as part of CRLF).

    Only such text goes to numpy's fast parser, which would read a lone or trailing '-' as 0.
    (Empty fields make it return fewer numbers, and numbers past int64 saturate: read_index
    checks both on the result.)
    """
    if not text or text.translate(None, b"0123456789-\t\r\n"):
        return False
    chars = np.frombuffer(text, dtype=np.uint8)
    seps = chars[(chars == 9) | (chars == 10)]
    if not text.endswith(b"\n"):
        seps = np.append(seps, 10)
    if not (seps.size == 2 * lines and bool((seps[0::2] == 9).all() and (seps[1::2] == 10).all())):
        return False
    if b"\r" in text and text.count(b"\r") != text.count(b"\r\n"):
        return False
    if b"-" in text:  # rare: each '-' must start a field and be followed by a digit
        at = np.flatnonzero(chars == 45)
        before = chars[np.maximum(at - 1, 0)]
        after = chars[np.minimum(at + 1, chars.size - 1)]
        starts_field = (at == 0) | (before == 9) | (before == 10)
        if not (starts_field & (at + 1 < chars.size) & (after >= 48) & (after <= 57)).all():
            return False
    return True


def read_index(idx_path):
    """Parse a ``.idx`` file -> (keys int64 [N], offsets int64 [N]) in file order."""
    idx_path = Path(idx_path)
    text = idx_path.read_bytes()
    lines = text.count(b"\n") + (1 if text and not text.endswith(b"\n") else 0)
    arr = None
    if _plain_index_text(text, lines):  # the usual 'key<TAB>offset' file: parse in C
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            flat = np.fromstring(text, dtype=np.int64, sep=" ")
        # numbers past int64 saturate to its limits: those files take the checked slow path
        if flat.size == 2 * lines and (not flat.size or (flat.min() > _INT64_LIMITS[0]
                                                          and flat.max() < _INT64_LIMITS[1])):
            arr = flat.reshape(-1, 2)
    if arr is None:  # anything else: line by line, naming the first bad line
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                row = (int(fields[0]), int(fields[1]))
                if not all(-(1 << 63) <= v < (1 << 63) for v in row):
                    raise ValueError
                rows.append(row)
            except ValueError:
                raise DataError(f"{idx_path}, line {lineno}: expected 'key<TAB>offset' integers, got "
                                f"{line[:60]!r}; rebuild the index with "
                                "`g2d-recordio index REC --force`") from None
        arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    if (arr[:, 1] < 0).any():
        raise DataError(f"{idx_path}: negative offset in index; rebuild it with "
                        "`g2d-recordio index REC --force`")
    return arr[:, 0].copy(), arr[:, 1].copy()


def build_index(rec_path, idx_path=None, progress=False):
    """Walk the records of ``rec_path`` and write ``idx_path`` (default: same stem, ``.idx``).

    Keys are the record numbers 0, 1, 2, ... in file order (as mxnet's ``tools/rec2idx.py`` does,
    and as arcface_torch's files are keyed). Returns the number of records.
    Raises DataError at the first corrupt or truncated frame.
    """
    rec_path = Path(rec_path)
    idx_path = Path(idx_path) if idx_path is not None else default_idx_path(rec_path)
    if not rec_path.is_file():
        raise DataError(f"{rec_path}: RecordIO file not found; pass the path of an existing .rec file")
    size = rec_path.stat().st_size
    lines = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"indexing {rec_path.name}")
    with open(rec_path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        try:
            pos, last, in_multi, start = 0, 0, False, 0
            while pos < size:
                key = len(lines) - 1 if in_multi else len(lines)  # record this frame belongs to
                if pos + 8 > size:
                    raise _frame_error("truncated frame header at the end of the file", rec_path,
                                       key, pos, _TRUNC_FIX)
                magic, lrec = _FRAME.unpack_from(mm, pos)
                if magic != MAGIC:
                    raise _frame_error(f"wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x})", rec_path,
                                       key, pos, "the file is not RecordIO or is corrupt")
                cflag, length = lrec >> 29, lrec & _LEN_MASK
                if cflag in (0, 1):
                    if in_multi:
                        raise _frame_error("multi-part record not terminated", rec_path, len(lines), start,
                                           "the file is corrupt")
                    start = pos
                    lines.append(f"{len(lines)}\t{pos}\n")
                    in_multi = cflag == 1
                elif cflag in (2, 3) and in_multi:
                    in_multi = cflag == 2
                else:
                    raise _frame_error(f"unexpected frame flag {cflag}", rec_path, key, pos,
                                       "the file is corrupt")
                nxt = pos + 8 + _pad4(length)
                if pos + 8 + length > size:
                    raise _frame_error(f"truncated record: frame of {length} bytes, file ends at {size}",
                                       rec_path, len(lines) - 1, pos, _TRUNC_FIX)
                pos = nxt
                if bar is not None and pos - last > (1 << 24):
                    bar.update(pos - last)
                    last = pos
            if in_multi:
                raise _frame_error("file ends inside a multi-part record", rec_path, len(lines) - 1, start,
                                   _TRUNC_FIX)
            if bar is not None:
                bar.update(size - last)
        finally:
            if size:
                mm.close()
            if bar is not None:
                bar.close()
    # write atomically: a crash never leaves a half index next to the .rec
    with write_errors(idx_path, option="--idx"), atomic_open(idx_path, "w", newline="\n") as f:
        f.writelines(lines)
    return len(lines)


# ------------------------------------------------------------------------------------------ reader
class IndexedRecordIO:
    """Random-access reader of a ``.rec`` through its ``.idx``, without mxnet.

    keys: list of int keys in idx order. read_idx(key) -> record bytes (``unpack`` it).
    The file is opened lazily and re-opened in a new process (fork, DataLoader workers); reads use
    ``os.pread`` so no file position is shared. Pickling keeps paths and index, never a file handle.
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else default_idx_path(self.rec_path)
        if not self.rec_path.is_file():
            raise DataError(f"{self.rec_path}: RecordIO file not found; pass the path of an existing .rec "
                            "(arcface_torch datasets hold train.rec and train.idx)")
        if not self.idx_path.is_file():
            raise DataError(f"{self.idx_path}: index file not found for {self.rec_path}; "
                            + INDEX_HINT.format(rec=self.rec_path))
        self.size = self.rec_path.stat().st_size
        self._keys, self._offsets = read_index(self.idx_path)
        n = len(self._keys)
        self._dense = bool(n) and np.array_equal(self._keys, np.arange(n))
        if not self._dense:
            # mxnet's dict semantics: for a repeated key the last line wins
            order = np.argsort(self._keys, kind="stable")
            self._sorted_keys = self._keys[order]
            self._sorted_pos = order
        # extent: bytes from a record's offset to the next record's offset (or EOF); one read
        # of that many bytes normally holds the whole record.
        uniq = np.unique(np.append(self._offsets, self.size))
        nxt = uniq[np.minimum(np.searchsorted(uniq, self._offsets, side="right"), len(uniq) - 1)]
        self._extent = np.maximum(nxt - self._offsets, 0)
        self._fd = None
        self._pid = None
        self._keys_list = None

    # --- index
    @property
    def keys(self):
        """Keys (ints) in idx order."""
        if self._keys_list is None:
            self._keys_list = self._keys.tolist()
        return self._keys_list

    @property
    def key_array(self):
        """Keys as int64 [N] array in idx order (no copy)."""
        return self._keys

    @property
    def offsets(self):
        """Byte offsets as int64 [N] array in idx order (no copy)."""
        return self._offsets

    def __len__(self):
        return len(self._keys)

    def has_keys(self, keys):
        """bool [M] mask: which of the int keys [M] are in the index."""
        keys = np.asarray(keys, dtype=np.int64)
        if self._dense:
            return (keys >= 0) & (keys < len(self._keys))
        if not len(self._keys):
            return np.zeros(keys.shape, dtype=bool)
        i = np.searchsorted(self._sorted_keys, keys, side="right") - 1
        return (i >= 0) & (self._sorted_keys[np.maximum(i, 0)] == keys)

    def __contains__(self, key):
        return self._position(key, missing_ok=True) is not None

    def offset(self, key):
        """Byte offset of the record ``key``."""
        return int(self._offsets[self._position(key)])

    def _position(self, key, missing_ok=False):
        key = int(key)
        if self._dense:
            if 0 <= key < len(self._keys):
                return key
        else:
            i = int(np.searchsorted(self._sorted_keys, key, side="right")) - 1
            if i >= 0 and self._sorted_keys[i] == key:
                return int(self._sorted_pos[i])
        if missing_ok:
            return None
        raise DataError(f"{self.idx_path}: no record with key {key} in the index ({len(self)} keys); "
                        "the dataset header and the index disagree: rebuild the index or re-create the .rec")

    # --- file handle
    def _file(self):
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            # after fork the inherited descriptor would work with pread, but each process gets its own
            # so closing in one never affects another
            self._fd = os.open(self.rec_path, os.O_RDONLY)
            self._pid = pid
        return self._fd

    def close(self):
        """Close the file (it re-opens on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
        self._pid = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"] = None
        state["_pid"] = None
        state["_keys_list"] = None
        return state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- reading
    def _where(self, key):
        return f"{self.rec_path}, record key {key}"

    def read_view(self, key):
        """Record ``key`` as a bytes-like (memoryview or bytes), avoiding copies. See read_idx."""
        pos = self._position(key)
        offset = int(self._offsets[pos])
        if offset + 8 > self.size:
            raise _frame_error(f"index offset is past the end of the file (size {self.size})", self.rec_path,
                               key, offset, "the .rec is truncated or the .idx belongs to another file: "
                               "re-copy the .rec or rebuild the index")
        fd = self._file()
        extent = int(self._extent[pos])
        buf = os.pread(fd, min(max(extent, 8), _MAX_EXTENT_READ), offset)
        if len(buf) >= 8:
            magic, lrec = _FRAME.unpack_from(buf, 0)
            if magic == MAGIC and lrec >> 29 == 0:
                end = 8 + (lrec & _LEN_MASK)
                if end <= len(buf):
                    return memoryview(buf)[8:end]
        return _read_frames(lambda o, n: os.pread(fd, n, o), offset, self.size, self.rec_path, key, first=buf)

    def read_idx(self, key):
        """Record bytes of ``key`` (payload of all its frames, reassembled), like mxnet's ``read_idx``."""
        view = self.read_view(key)
        return view if isinstance(view, bytes) else bytes(view)

    def read_header(self, key):
        """IRHeader of record ``key``, reading only its first bytes."""
        pos = self._position(key)
        offset = int(self._offsets[pos])
        if offset + 8 > self.size:
            return unpack(self.read_view(key), self._where(key))[0]  # raises the clear error
        buf = os.pread(self._file(), 8 + HEADER_SIZE + 64, offset)
        if len(buf) >= 8 + HEADER_SIZE:
            magic, lrec = _FRAME.unpack_from(buf, 0)
            length = lrec & _LEN_MASK
            if magic == MAGIC and lrec >> 29 in (0, 1) and length >= HEADER_SIZE:
                flag = _HEADER.unpack_from(buf, 8)[0]
                need = HEADER_SIZE + 4 * flag
                if need <= length and 8 + need <= len(buf):
                    return _unpack_header(memoryview(buf)[8:8 + need], self._where(key))[0]
        return _unpack_header(self.read_view(key), self._where(key))[0]


# ------------------------------------------------------------------------------------------ writer
class IndexedRecordIOWriter:
    """Writes ``.rec`` + ``.idx`` byte-identical to mxnet's ``MXIndexedRecordIO(idx, rec, 'w')``.

    with IndexedRecordIOWriter("train.rec", "train.idx") as w:
        w.write_idx(0, pack(IRHeader(0, 3.0, 0, 0), jpeg_bytes))

    Atomic (fileio.atomic_open): both files are written beside their targets under temporary names
    and put in place by ``close()`` (the end of the ``with`` block), the ``.rec`` first. An error
    inside the ``with`` block, or an interrupted run, leaves the old files (or none), never half a
    ``.rec`` or an index of records that are not there.
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else default_idx_path(self.rec_path)
        self._files = contextlib.ExitStack()
        with self._files:  # on an error here, the file opened first is removed again
            self._idx = self._files.enter_context(atomic_open(self.idx_path, "w", newline="\n"))
            self._rec = self._files.enter_context(atomic_open(self.rec_path))
            self._files = self._files.pop_all()
        self._pos = 0

    def tell(self):
        """Byte offset where the next record will start."""
        return self._pos

    def write(self, record):
        """Append a record without an index line; returns its offset."""
        data = frame_record(record)
        pos = self._pos
        self._rec.write(data)
        self._pos += len(data)
        return pos

    def write_idx(self, key, record):
        """Append a record and its ``key<TAB>offset`` index line."""
        key = int(key)
        pos = self.write(record)
        self._idx.write(f"{key}\t{pos}\n")
        return pos

    def close(self):
        """Put the written files in place (the .rec, then the .idx)."""
        self.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._rec is not None:
            self._rec = self._idx = None
            self._files.__exit__(*exc)  # an error: the temporary files are removed
