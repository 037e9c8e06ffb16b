"""An aligned image folder -> RecordIO in arcface_torch's layout.

    pack_folder(src, out)
        src/<identity>/<face> -> out/train.rec + train.idx: record 0 a header (label [first
        identity record, end]), images 1..N (label = class id, identities numbered in sorted folder
        order as ImageFolderFaces does), then one record per identity (label [first image, end)).
        Image bytes are stored as they are (JPEG/PNG), others re-encoded.
"""
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import atomic_open, write_errors
from .image_io import encode_image_bytes, try_decode_image_bytes

def _recordio_paths(out):
    out = Path(out)
    if out.suffix.lower() == ".rec":
        return out, out.with_suffix(".idx"), out.parent
    return out / "train.rec", out / "train.idx", out


def pack_folder(src, out, size=112, quality=95, force=False, progress=True):
    """Pack an aligned image folder src/<identity>/<face> into RecordIO (arcface_torch layout).

    out: a folder (gets train.rec, train.idx, property) or a .rec path (its .idx beside it).
    Faces must be size x size (align them first). Returns a summary dict: images, identities,
    rec, idx. A failed write (disk full, read-only, ...) is an OutputError and leaves no partial file.
    """
    from tqdm import tqdm

    from .folder import scan_image_folder
    from .recordio import IndexedRecordIOWriter, IRHeader, pack

    src = Path(src)
    items, identities, _ = scan_image_folder(src)
    rec_path, idx_path, folder = _recordio_paths(out)
    if rec_path.exists() and not force:
        raise DataError(f"{rec_path} exists; pass --force to overwrite it")
    n, c = len(items), len(identities)
    first = np.zeros(c + 1, np.int64)  # image keys of identity k: first[k] .. first[k+1]-1
    for _, label in items:
        first[label + 1] += 1
    first = 1 + np.cumsum(first)
    with write_errors(rec_path, idx_path, folder / "property"):
        if idx_path.exists():
            idx_path.unlink()  # never leave an old index next to a new .rec
        with IndexedRecordIOWriter(rec_path, idx_path) as writer:
            writer.write_idx(0, pack(IRHeader(0, [n + 1, n + 1 + c], 0, 0), b""))
            for key, (rel, label) in enumerate(tqdm(items, desc="packing", unit="img", disable=not progress,
                                                    dynamic_ncols=True), start=1):
                data = (src / rel).read_bytes()
                img, why = try_decode_image_bytes(data)
                if img is None:
                    raise DataError(f"cannot read face {src / rel}: {why}; replace or delete the file")
                if img.shape[:2] != (size, size):
                    raise DataError(f"{src / rel} is {img.shape[1]}x{img.shape[0]}, not an aligned {size}x{size} "
                                    "face: align the photos first (g2d-data align)")
                if not (data[:2] == b"\xff\xd8" or data[:8] == b"\x89PNG\r\n\x1a\n"):
                    data = encode_image_bytes(img, "jpg", quality)
                writer.write_idx(key, pack(IRHeader(0, float(label), key, 0), data))
            for k in range(c):
                writer.write_idx(n + 1 + k, pack(IRHeader(0, [int(first[k]), int(first[k + 1])], 0, 0), b""))
        with atomic_open(folder / "property", "w") as f:
            f.write(f"{c},{size},{size}\n")
    return {"images": n, "identities": c, "rec": str(rec_path), "idx": str(idx_path)}
