"""RecordIOFaces: arcface_torch's ``train.rec``/``train.idx`` as a face dataset (no mxnet needed)."""
import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .image_io import fit_square
from .recordio import HEADER_SIZE, IndexedRecordIO, _unpack_header, decode_image

log = logging.getLogger(__name__)

FACE_SIZE = 112
_MIN_RECORD_BYTES = 8 + HEADER_SIZE  # frame header + IRHeader: no image record is smaller
_MAX_LABEL = 1 << 24  # float32 holds every integer up to here exactly; larger class ids cannot be trusted


def resolve_recordio_paths(path, idx_path=None):
    """A folder holding train.rec/train.idx, or a .rec path -> (rec_path, idx_path)."""
    path = Path(path)
    if path.is_dir():
        rec = path / "train.rec"
        if not rec.is_file():
            raise DataError(f"{path}: no train.rec in this folder; pass a folder with train.rec and "
                            "train.idx (arcface_torch layout) or the path of a .rec file")
        return rec, Path(idx_path) if idx_path else path / "train.idx"
    return path, Path(idx_path) if idx_path else path.with_suffix(".idx")


class RecordIOFaces(torch.utils.data.Dataset):
    """Faces and identity labels from a RecordIO file, following the project's dataset protocol.

    Two layouts (as arcface_torch's MXFaceDataset reads them):
      * "arcface": record 0 is a header-only record (flag > 0, no image bytes) whose label is
        [first identity record, end]; the images are records 1 .. label[0]-1.
      * "plain": record 0 is an image (or there is no key 0): every key in the .idx is an image.
    (arcface_torch looks only at flag > 0; a record 0 that has a vector label *and* an image is an
    image here, not a header.)

    __getitem__(i) -> (uint8 [112, 112, 3] RGB, int label). Label is header.label, or the first
    element of a vector label; it must be a whole number >= 0. Images of another size are resized
    (with one warning).

    skip_bad: False (default) raises DataError on a bad record; True replaces it with the next good
    index (i+1, i+2, ... wrapping around; deterministic) and counts it in ``bad_count`` (per
    process; warnings are logged at counts 1, 2, 4, 8, ...).
    """

    def __init__(self, path, idx_path=None, skip_bad=False, size=FACE_SIZE):
        rec, idx = resolve_recordio_paths(path, idx_path)
        self.reader = IndexedRecordIO(rec, idx)
        self.skip_bad = bool(skip_bad)
        self.size = int(size)
        self.bad_count = 0
        self._bad = set()
        self._warned_resize = False
        self._labels = None
        self._num_classes = None
        self._fingerprint = None
        self.layout, self.header0, self.keys = self._find_images()
        if not len(self.keys):
            raise DataError(f"{rec}: no image records in this file; check that it is a face dataset")
        self._check_offsets()

    def _find_images(self):
        r = self.reader
        if 0 in r:
            rec0 = r.read_view(0)
            header, start = _unpack_header(rec0, f"{r.rec_path}, record key 0")
            payload_len = len(rec0) - start
            if header.flag > 0 and payload_len == 0:
                if header.flag < 2:
                    raise DataError(f"{r.rec_path}, record key 0: a header record with {header.flag} label; "
                                    "arcface_torch's header needs 2 (first identity record, end)")
                first, end = float(header.label[0]), float(header.label[1])
                if not (math.isfinite(first) and first >= 1 and first == int(first)):
                    raise DataError(f"{r.rec_path}, record key 0: header label {header.label.tolist()} does not "
                                    "give a valid first identity record; the file header is corrupt")
                # checked before allocating the key range: a corrupt label must not ask for 64 GiB
                claimed = int(first) - 1
                if claimed * _MIN_RECORD_BYTES > r.size or (claimed > len(r) and not self.skip_bad):
                    raise DataError(f"{r.rec_path}, record key 0: header says images are records 1..{claimed} "
                                    f"but {r.idx_path} has {len(r)} entries and the .rec {r.size} bytes; the "
                                    "header is corrupt or the .idx belongs to another file: re-create the .rec "
                                    "or rebuild the index (g2d-recordio index REC --force)")
                keys = np.arange(1, int(first), dtype=np.int64)
                missing = int((~r.has_keys(keys)).sum())
                if missing and not self.skip_bad:
                    raise DataError(f"{r.rec_path}: header says images are records 1..{int(first) - 1} but "
                                    f"{r.idx_path} lacks {missing} of them; the .idx does not match the .rec: "
                                    "rebuild it (g2d-recordio index REC --force)")
                return "arcface", (int(first), int(end)), keys
        return "plain", None, r.key_array.copy()

    def _check_offsets(self):
        r = self.reader
        past = int((r.offsets + 8 > r.size).sum())
        if past and not self.skip_bad:
            raise DataError(f"{r.idx_path}: {past} of {len(r)} index entries point past the end of "
                            f"{r.rec_path} ({r.size} bytes): the .rec is truncated or the .idx belongs to "
                            "another file; re-copy the .rec, rebuild the index, or skip bad records "
                            "(config skip_bad=True / --skip-bad)")

    def __len__(self):
        return len(self.keys)

    # --- labels
    def _label_of(self, header, key):
        label = header.label
        if header.flag > 0:
            label = label[0]
        label = float(label)
        if not (math.isfinite(label) and label >= 0 and label == int(label)):
            raise DataError(f"{self.reader.rec_path}, record key {key}: label {label} is not a whole number "
                            ">= 0; class labels must be integer class ids (wrong file or corrupt record)")
        if label > _MAX_LABEL:
            raise DataError(f"{self.reader.rec_path}, record key {key}: label {label:.0f} is past 2**24, where "
                            "float32 labels stop being exact integers; the record is corrupt (or not a class id)")
        return int(label)

    def _load(self, key):
        where = f"{self.reader.rec_path}, record key {key}"
        rec = self.reader.read_view(key)
        header, start = _unpack_header(rec, where)
        label = self._label_of(header, key)
        img = decode_image(rec[start:], where)
        if img.shape[0] != self.size or img.shape[1] != self.size:
            if not self._warned_resize:
                log.warning("%s: image of record key %d is %dx%d, resizing to %dx%d (warned once)",
                            self.reader.rec_path, key, img.shape[1], img.shape[0], self.size, self.size)
                self._warned_resize = True
            img = fit_square(img, self.size)
        return img, label

    def _mark_bad(self, i, err):
        self._bad.add(i)
        self.bad_count += 1
        if self.bad_count & (self.bad_count - 1) == 0:
            log.warning("%s: skipped %d bad record(s) so far (skip_bad=True); latest: %s",
                        self.reader.rec_path, self.bad_count, err)

    def __getitem__(self, i):
        n = len(self.keys)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} faces")
        i %= n
        if not self.skip_bad:
            return self._load(int(self.keys[i]))
        for step in range(n):
            j = (i + step) % n
            if j in self._bad:
                continue
            try:
                return self._load(int(self.keys[j]))
            except DataError as err:
                self._mark_bad(j, err)
        raise DataError(f"{self.reader.rec_path}: every record is bad ({n} tried); this is not a usable dataset")

    # --- metadata
    def labels(self):
        """int64 [len] class label of every image, reading headers only (cached).

        With skip_bad, records whose header cannot be read get label -1.
        """
        if self._labels is None:
            out = np.empty(len(self.keys), dtype=np.int64)
            for i, key in enumerate(self.keys.tolist()):
                try:
                    out[i] = self._label_of(self.reader.read_header(key), key)
                except DataError as err:
                    if not self.skip_bad:
                        raise
                    out[i] = -1
                    if i not in self._bad:
                        self._mark_bad(i, err)
            self._labels = out
        return self._labels

    @property
    def num_classes(self):
        """Largest label + 1 (read from the headers on first use, then cached)."""
        if self._num_classes is None:
            self._num_classes = int(self.labels().max()) + 1
        return self._num_classes

    def fingerprint(self):
        """Short hex id of the content: hash of the .idx bytes, the .rec size and the layout."""
        if self._fingerprint is None:
            h = hashlib.sha1()
            h.update(self.reader.idx_path.read_bytes())
            h.update(f"|{self.reader.size}|{self.layout}|{self.header0}|{self.size}".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint
