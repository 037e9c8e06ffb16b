"""Fuzzing the RecordIO reader (insightface_g2d.data.recordio) and RecordIOFaces.

A small valid .rec/.idx (arcface_torch layout: header record 0, PNG faces, two of them split into
several frames, identity records) is written with our writer; each example mutates it (flipped
bytes, overwritten ranges, rewritten frame lengths/flags/magic words/header fields, truncation,
appended garbage, inserted or deleted bytes, garbage .idx lines) and reads everything back.

Every outcome must be a correct parse or a DataError: never another exception, a hang, or a
silently wrong result. RecordIO has no checksums, so "silently wrong" is checked as follows
(the oracle below walks the original file's frames itself, independently of the reader):

* a record none of whose bytes changed, and that the truncation did not cut, reads back exactly
  (same payload bytes, header and pixels) -- no error allowed; changed padding bytes count as
  unchanged;
* a record cut by the truncation must raise DataError (never a shortened payload);
* a record whose only changed bytes are image bytes must raise DataError: the faces are PNG,
  whose chunk CRCs and zlib checksum make any change detectable;
* a record whose frame header or record header changed either raises DataError or decodes to the
  original pixels; its (flag, label, id, id2) header must equal the original unless the header
  bytes themselves changed (a header has no checksum in RecordIO: a changed label that is still a
  whole number cannot be detected by any reader -- a limitation of the format, not of ours);
* the index rebuilt by build_index from a file whose frame headers are intact equals the original
  index; any index it builds lists only true record starts;
* a mutated .idx parses exactly as an independent reference parser (int64 keys/offsets, one
  'key offset' pair per non-blank line) or raises DataError; a record read through it is the
  original record at that offset, and an offset that is not a record start never reads.
"""
import atexit
import logging
import shutil
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from insightface_g2d.data import recordio as R
from insightface_g2d.data.recordio_dataset import RecordIOFaces
from insightface_g2d.errors import DataError
from test_fuzz_support import Counter, fuzz, time_limit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIZE = 24  # small faces: fast to decode; RecordIOFaces(size=SIZE) so nothing is resized
MAGIC_FLOAT = struct.unpack("<f", R.MAGIC_BYTES)[0]  # a label whose bytes are the magic word
N_IMAGES, IDS = 4, 3
CLASSES = [0, 0, 1, 2]
VECTOR = {2, 3}  # image keys stored with vector label [class, MAGIC_FLOAT]: split into 2 frames


class Mutated(bytes):
    """Mutated file bytes whose repr (in hypothesis's failure report) is the edit list, not the bytes."""

    def __new__(cls, data, desc):
        obj = super().__new__(cls, data)
        obj.desc = desc
        return obj

    def __repr__(self):
        return f"Mutated(<{len(self)} bytes>, {self.desc!r})"


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (SIZE, SIZE),
                       interpolation=cv2.INTER_CUBIC) for _ in range(n)]


class Original:
    """The valid file and, per record, the oracle's view of its bytes."""

    def __init__(self, folder):
        folder = Path(folder)
        self.rec_path, self.idx_path = folder / "train.rec", folder / "train.idx"
        self.faces = _faces(N_IMAGES)
        n = N_IMAGES
        with R.IndexedRecordIOWriter(self.rec_path, self.idx_path) as w:
            w.write_idx(0, R.pack(R.IRHeader(0, [n + 1, n + 1 + IDS], 0, 0), b""))
            for k in range(1, n + 1):
                cls = CLASSES[k - 1]
                label = [cls, MAGIC_FLOAT] if k in VECTOR else float(cls)
                w.write_idx(k, R.pack_img(R.IRHeader(0, label, k, 7), self.faces[k - 1], quality=3, fmt=".png"))
            for c in range(IDS):
                w.write_idx(n + 1 + c, R.pack(R.IRHeader(0, [1 + 2 * c, 3 + 2 * c], 0, 0), b""))
        self.rec = self.rec_path.read_bytes()
        self.idx = self.idx_path.read_bytes()
        self.size = len(self.rec)
        self.keys = list(range(n + 1 + IDS))
        self.image_keys = list(range(1, n + 1))
        self.records = self._walk()
        self.starts = {r["offset"]: k for k, r in self.records.items()}
        self.frame_positions = [f for r in self.records.values() for f in r["frames"]]
        self.payload = {k: bytes(r["payload"]) for k, r in self.records.items()}
        self.header = {k: R.unpack(self.payload[k])[0] for k in self.keys}
        self.image = {k: R.unpack_img(self.payload[k])[1] for k in self.image_keys}
        assert all(len(self.records[k]["frames"]) == 2 for k in VECTOR)  # multi-frame records exist
        assert all((self.image[k] == self.faces[k - 1]).all() for k in self.image_keys)

    def _walk(self):
        """Independent frame walk: per key, offset, frame starts, byte zones and payload."""
        data, pos, records = self.rec, 0, {}
        for key in range(len(self.idx.splitlines())):
            rec = dict(offset=pos, frames=[], F=set(), P=set(), payload_pos=[], payload=bytearray())
            while True:
                magic, lrec = struct.unpack_from("<II", data, pos)
                assert magic == R.MAGIC
                cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
                if rec["frames"]:  # the dropped magic word between frames: lives in this frame header
                    rec["payload"] += R.MAGIC_BYTES
                    rec["payload_pos"] += list(range(pos, pos + 4))
                rec["frames"].append(pos)
                rec["F"].update(range(pos, pos + 8))
                rec["payload"] += data[pos + 8:pos + 8 + length]
                rec["payload_pos"] += list(range(pos + 8, pos + 8 + length))
                padded = (length + 3) & ~3
                rec["P"].update(range(pos + 8 + length, pos + 8 + padded))
                rec["data_end"] = pos + 8 + length
                pos += 8 + padded
                if cflag in (0, 3):
                    break
            rec["end"] = pos
            header, start = R._unpack_header(bytes(rec["payload"]), "oracle")
            rec["H"] = set(rec["payload_pos"][:start]) - rec["F"]
            rec["I"] = set(rec["payload_pos"][start:]) - rec["F"]
            records[key] = rec
        assert pos == len(data)
        return records

    def span(self, key):
        r = self.records[key]
        return range(r["offset"], r["end"])


_ORIGINAL = None


def original():
    global _ORIGINAL
    if _ORIGINAL is None:
        folder = tempfile.mkdtemp(prefix="g2d_fuzz_rec_")
        atexit.register(shutil.rmtree, folder, True)
        _ORIGINAL = Original(folder)
    return _ORIGINAL


def write_case(folder, rec=None, idx=None):
    o = original()
    rec_path, idx_path = Path(folder) / "train.rec", Path(folder) / "train.idx"
    rec_path.write_bytes(o.rec if rec is None else rec)
    idx_path.write_bytes(o.idx if idx is None else idx)
    return rec_path, idx_path


def dirty_positions(mutated):
    o = original()
    n = min(len(mutated), o.size)
    a = np.frombuffer(o.rec, np.uint8, n)
    b = np.frombuffer(mutated, np.uint8, n)
    return set(np.nonzero(a != b)[0].tolist())


def equal_header(h1, h2):
    return (h1.flag == h2.flag and h1.id == h2.id and h1.id2 == h2.id2
            and np.array_equal(np.asarray(h1.label, np.float32), np.asarray(h2.label, np.float32)))


def _outcome(fn):
    try:
        return True, fn()
    except DataError:
        return False, None


def expected_state(key, dirty, cut):
    """What the oracle demands of record `key`: 'exact', 'error', 'error-decode' or 'loose'."""
    o = original()
    r = o.records[key]
    changed = dirty.intersection(o.span(key))
    if cut < r["data_end"]:
        # with its frame headers intact the record's true length is known: a cut must be noticed
        return "loose" if changed & r["F"] else "error"
    if not changed or changed <= r["P"]:
        return "exact"
    if changed <= r["I"]:
        return "error-decode"
    return "loose"


def check_record(reader, key, dirty, cut):
    """Read `key` through `reader` (index intact) and hold it to the oracle; returns the outcome name."""
    o = original()
    state = expected_state(key, dirty, cut)
    ok, payload = _outcome(lambda: reader.read_idx(key))
    if state == "error":
        assert not ok, f"record {key} cut by truncation at {cut} was read ({len(payload)} bytes)"
        return "error"
    if state == "exact":
        assert ok and payload == o.payload[key], f"untouched record {key} did not read back exactly"
    if not ok:
        return "error"
    is_image = key in o.image_keys
    if is_image:
        ok, decoded = _outcome(lambda: R.unpack_img(payload))
    else:
        ok, decoded = _outcome(lambda: R.unpack(payload))
    if state == "error-decode":
        assert not ok, f"record {key}: image bytes changed but the record decoded"
        return "error"
    if state == "exact":
        assert ok
    if not ok:
        return "error"
    header = decoded[0]
    if is_image:
        img = decoded[1]
        assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3)
        assert np.array_equal(img, o.image[key]), f"record {key} decoded to other pixels (silently wrong)"
    if not dirty.intersection(o.records[key]["H"]):
        assert equal_header(header, o.header[key]), f"record {key}: header changed though its bytes did not"
    return "same" if state == "exact" else "survived"


def check_dataset(rec_path, idx_path, dirty, cut, skip_bad):
    """RecordIOFaces over the mutated file: construction, every item, labels()."""
    o = original()
    ok, ds = _outcome(lambda: RecordIOFaces(rec_path, idx_path, skip_bad=skip_bad, size=SIZE))
    if not ok:
        # construction reads record 0 and checks the offsets against the file size only
        assert expected_state(0, dirty, cut) != "exact" or cut < o.size, "dataset refused an intact header"
        return "error"
    if expected_state(0, dirty, cut) == "exact":
        assert ds.layout == "arcface" and ds.keys.tolist() == o.image_keys
    if not skip_bad:  # with skip_bad, keys the header names but the .idx lacks are allowed (and skipped)
        assert set(ds.keys.tolist()) <= set(o.keys)
    for i, key in enumerate(ds.keys.tolist()):
        state = expected_state(key, dirty, cut) if key in o.image_keys else "error"
        ok, item = _outcome(lambda: ds[i])
        if not skip_bad:
            if state == "exact":
                assert ok, f"item {i} (untouched key {key}) raised"
            if state in ("error", "error-decode"):
                assert not ok, f"item {i} (key {key}) should have been refused"
        if not ok:
            continue
        img, label = item
        assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3) and isinstance(label, int) and label >= 0
        if state == "exact" or not skip_bad:
            # without skip_bad the item is record `key` itself: its pixels must be the original ones
            assert key in o.image_keys and np.array_equal(img, o.image[key])
            if not dirty.intersection(o.records[key]["H"]):
                assert label == CLASSES[key - 1]
        else:  # replaced by the next good record: must be some original face
            assert any(np.array_equal(img, o.image[k]) for k in o.image_keys)
    ok, labels = _outcome(ds.labels)
    if ok:
        for key, label in zip(ds.keys.tolist(), labels.tolist()):
            if key in o.image_keys and expected_state(key, dirty, cut) == "exact":
                assert label == CLASSES[key - 1], f"labels(): untouched key {key} has label {label}"
            assert label >= 0 or skip_bad
    return "dataset-ok"


# ------------------------------------------------------------------------------------- strategies
@st.composite
def inplace_mutation(draw):
    """(mutated .rec bytes, description): in-place edits, then maybe truncation or appended bytes."""
    o = original()
    data = bytearray(o.rec)
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "overwrite", "lrec", "magic", "header", "label", "vlabel"]))
        if kind == "flip":
            pos = draw(st.one_of(st.integers(0, o.size - 1),
                                 st.sampled_from(o.frame_positions).map(lambda p: p)).filter(lambda p: p < o.size))
            pos = min(o.size - 1, pos + draw(st.integers(0, 35)))
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "overwrite":
            pos = draw(st.integers(0, o.size - 1))
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(chunk)] = chunk[: o.size - pos]
        elif kind in ("lrec", "magic"):
            frame = draw(st.sampled_from(o.frame_positions))
            if kind == "magic":
                data[frame:frame + 4] = draw(st.binary(min_size=4, max_size=4))
            else:
                old = struct.unpack_from("<I", data, frame + 4)[0]
                new = draw(st.one_of(
                    st.integers(0, 2**32 - 1),
                    st.integers(-16, 16).map(lambda d: (old + d) % 2**32),
                    st.integers(0, 7).map(lambda c: (c << 29) | (old & ((1 << 29) - 1))),
                    st.integers(0, 31).map(lambda b: old ^ (1 << b)),
                ))
                struct.pack_into("<I", data, frame + 4, new)
        else:  # rewrite a field of a record's IRHeader (first frame, right after its frame header)
            key = draw(st.sampled_from(o.keys))
            at = o.records[key]["offset"] + 8
            if kind == "header":
                field = draw(st.sampled_from([(0, "<I"), (8, "<Q"), (16, "<Q")]))
                value = draw(st.integers(0, 2**32 - 1)) if field[1] == "<I" else draw(st.integers(0, 2**64 - 1))
                struct.pack_into(field[1], data, at + field[0], value)
            elif kind == "label":
                struct.pack_into("<f", data, at + 4, draw(st.floats(width=32, allow_nan=True)))
            else:  # a vector label value (record 0: first image / end; identity records; VECTOR faces)
                slot = draw(st.integers(0, 1))
                value = draw(st.one_of(st.floats(width=32), st.integers(-4, 2**33).map(float)))
                struct.pack_into("<f", data, at + 24 + 4 * slot, value)
        ops.append((kind, pos if kind in ("flip", "overwrite") else frame if kind in ("lrec", "magic") else key))
    tail = draw(st.sampled_from(["none", "none", "truncate", "append"]))
    if tail == "truncate":
        cut = draw(st.one_of(st.integers(0, o.size - 1),
                             st.sampled_from(o.frame_positions).flatmap(
                                 lambda p: st.integers(max(0, p - 4), min(o.size - 1, p + 40)))))
        data = data[:cut]
    elif tail == "append":
        data += draw(st.one_of(st.binary(min_size=1, max_size=40),
                               st.binary(max_size=24).map(lambda b: R.MAGIC_BYTES + b)))
    return Mutated(bytes(data), f"{ops} then {tail} -> {len(data)} bytes")


def idx_line_strategy():
    num = st.one_of(st.integers(-5, 10**6), st.integers(-2**70, 2**70),
                    st.sampled_from(["-", "", "0-", "--1", "+3", "1_0", " 7", "9" * 20, "-" + "9" * 19,
                                     "9223372036854775807", "9223372036854775808", "1e3", "0x10", "٣"]))
    sep = st.sampled_from(["\t", " ", "\t\t", ",", "", "\t\r"])
    structured = st.tuples(num, sep, num).map(lambda t: f"{t[0]}{t[1]}{t[2]}")
    return st.one_of(structured, st.text(max_size=30))


@st.composite
def idx_mutation(draw):
    """(mutated .idx bytes, description)."""
    o = original()
    lines = o.idx.decode().splitlines()
    kind = draw(st.sampled_from(["replace", "insert", "delete", "offset", "key", "truncate", "bytes", "many"]))
    if kind in ("replace", "insert", "many"):
        for _ in range(draw(st.integers(1, 3)) if kind == "many" else 1):
            i = draw(st.integers(0, len(lines)))
            line = draw(idx_line_strategy())
            if kind == "insert" or i == len(lines):
                lines.insert(i, line)
            else:
                lines[i] = line
    elif kind == "delete" and lines:
        del lines[draw(st.integers(0, len(lines) - 1))]
    elif kind in ("offset", "key"):
        i = draw(st.integers(0, len(lines) - 1))
        key, off = map(int, lines[i].split("\t"))
        new = draw(st.one_of(st.integers(-8, 8).map(lambda d: (off if kind == "offset" else key) + d),
                             st.sampled_from(sorted(o.starts)), st.integers(-2**64, 2**64)))
        lines[i] = f"{key}\t{new}" if kind == "offset" else f"{new}\t{off}"
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n", "\n\n"]))
    data = text.encode("utf-8", "surrogatepass")
    if kind == "truncate":
        data = o.idx[: draw(st.integers(0, len(o.idx)))]
    elif kind == "bytes":
        data = draw(st.binary(max_size=200))
    return data, kind


def reference_index(data):
    """Independent .idx parser: (keys, offsets) lists, or None where the file is not valid.

    Valid: every non-blank line is two fields (split on whitespace) that are ASCII integers (an
    optional leading '-', digits) fitting int64; offsets >= 0.
    """
    keys, offsets = [], []
    for line in data.splitlines():  # bytes semantics: lines end at LF, CR or CRLF only
        fields = line.split()  # ASCII whitespace
        if not fields:
            continue
        if len(fields) != 2:
            return None
        vals = []
        for f in fields:
            body = f[1:] if f.startswith(b"-") else f
            if not body.isdigit():  # bytes.isdigit: ASCII digits only
                return None
            v = int(f)
            if not -2**63 <= v < 2**63:
                return None
            vals.append(v)
        keys.append(vals[0])
        offsets.append(vals[1])
    if any(off < 0 for off in offsets):
        return None
    return keys, offsets


def _lenient_ints(fields):
    """True when Python's int() accepts every field (it also takes '+3', '1_0', other digits)."""
    try:
        [int(f) for f in fields]
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------ tests
@pytest.fixture(autouse=True)
def quiet_package_logs():
    """Thousands of skipped records would flood the log; restore the level for the other tests."""
    log = logging.getLogger("insightface_g2d")
    level = log.level
    log.setLevel(logging.ERROR)
    yield
    log.setLevel(level)


def test_fuzz_recordio_inplace_and_truncation():
    """Flipped/overwritten bytes, rewritten lengths/flags/magic/header fields, truncation, garbage tail."""
    counter = Counter("recordio.inplace+truncate (IndexedRecordIO, unpack, unpack_img, RecordIOFaces)")

    @fuzz(250)
    @given(mutation=inplace_mutation(), skip_bad=st.booleans())
    def run(mutation, skip_bad):
        data = mutation
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            o = original()
            rec_path, idx_path = write_case(tmp, rec=data)
            dirty, cut = dirty_positions(data), min(len(data), o.size)
            reader = R.IndexedRecordIO(rec_path, idx_path)  # .idx intact: must open
            results = [check_record(reader, key, dirty, cut) for key in o.keys]
            for key in o.keys:
                ok, header = _outcome(lambda: reader.read_header(key))
                if ok and expected_state(key, dirty, cut) == "exact":
                    assert equal_header(header, o.header[key])
            reader.close()
            check_dataset(rec_path, idx_path, dirty, cut, skip_bad)
        counter.add("all-exact" if set(results) == {"same"} else
                    "some-survived" if "survived" in results else "some-refused")

    run()
    counter.report()


def test_fuzz_recordio_build_index():
    """build_index on mutated files: DataError, or an index of true record starts (equal when frames are intact)."""
    counter = Counter("recordio.build_index")

    @fuzz(250)
    @given(mutation=inplace_mutation())
    def run(mutation):
        data = mutation
        o = original()
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            rec_path = Path(tmp) / "x.rec"
            rec_path.write_bytes(data)
            ok, n = _outcome(lambda: R.build_index(rec_path, Path(tmp) / "x.idx"))
            dirty = dirty_positions(data)
            frames_intact = not any(dirty.intersection(o.records[k]["F"]) for k in o.keys)
            if len(data) == o.size and frames_intact:
                assert ok, "payload-only changes must not derail indexing"
            if len(data) < o.size:
                cut_inside = any(o.records[k]["offset"] < len(data) < o.records[k]["data_end"] for k in o.keys)
                if cut_inside:
                    assert not ok, "a file cut inside a record must not index cleanly"
            if not ok:
                counter.add("refused")
                return
            keys, offsets = R.read_index(Path(tmp) / "x.idx")
            assert n == len(offsets) and keys.tolist() == list(range(n))
            true_starts = [off for off in offsets.tolist() if off < o.size]
            assert set(true_starts) <= set(o.starts), "index points into the middle of a record"
            if len(data) == o.size and frames_intact:
                assert offsets.tolist() == sorted(o.starts)
            counter.add("indexed")

    run()
    counter.report()


@st.composite
def shift_mutation(draw):
    o = original()
    pos = draw(st.integers(0, o.size))
    if draw(st.booleans()):
        ins = draw(st.one_of(st.binary(min_size=1, max_size=12), st.sampled_from([b"\0" * 4, b"\0" * 8])))
        return Mutated(o.rec[:pos] + ins + o.rec[pos:], f"insert {ins!r} at {pos}"), pos
    n = draw(st.integers(1, 12))
    return Mutated(o.rec[:pos] + o.rec[pos + n:], f"delete {n} bytes at {pos}"), pos


def test_fuzz_recordio_inserted_or_deleted_bytes():
    """Bytes inserted/deleted (everything after shifts): reads are DataError or some real record."""
    counter = Counter("recordio.insert/delete")

    @fuzz(150)
    @given(mutation=shift_mutation())
    def run(mutation):
        data, pos = mutation
        o = original()
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            rec_path, idx_path = write_case(tmp, rec=data)
            reader = R.IndexedRecordIO(rec_path, idx_path)
            outcomes = []
            for key in o.keys:
                ok, payload = _outcome(lambda: reader.read_idx(key))
                if o.records[key]["end"] <= pos:
                    assert ok and payload == o.payload[key], f"record {key} before the edit changed"
                if not ok:
                    outcomes.append("error")
                    continue
                ok, decoded = _outcome(lambda: R.unpack_img(payload) if key in o.image_keys else R.unpack(payload))
                if ok and key in o.image_keys:
                    # the record at this offset may be another one (the format cannot tell), but
                    # its pixels must be those of a real record
                    assert any(np.array_equal(decoded[1], o.image[k]) for k in o.image_keys)
                outcomes.append("read" if ok else "error")
            ok, _ = _outcome(lambda: R.build_index(rec_path, Path(tmp) / "scan.idx"))
            counter.add("build_index-ok" if ok else "build_index-refused")

    run()
    counter.report()


def test_fuzz_recordio_idx_lines():
    """Garbage/mutated .idx: parses like the reference or DataError; reads only real records."""
    counter = Counter("recordio.idx (read_index, IndexedRecordIO, RecordIOFaces)")

    @fuzz(300)
    @given(mutation=idx_mutation())
    def run(mutation):
        data, kind = mutation
        o = original()
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            rec_path, idx_path = write_case(tmp, idx=data)
            ref = reference_index(data)
            ok, parsed = _outcome(lambda: R.read_index(idx_path))
            if ok:
                keys, offsets = parsed
                assert keys.dtype == np.int64 and offsets.dtype == np.int64
                if ref is None:
                    # only Python int()'s extra spellings ('+3', '1_0', non-ASCII digits) may differ
                    lines = [ln.split() for ln in data.splitlines() if ln.split()]
                    assert all(len(f) == 2 and _lenient_ints(f) for f in lines), f"accepted invalid idx {data!r}"
                    assert all(-2**63 <= int(v) < 2**63 for f in lines for v in f)
                else:
                    assert (keys.tolist(), offsets.tolist()) == ref, f"idx {data!r} misparsed"
            else:
                assert ref is None, f"valid idx {data!r} refused"
            ok, reader = _outcome(lambda: R.IndexedRecordIO(rec_path, idx_path))
            if not ok:
                counter.add("refused")
                return
            for key in reader.keys:
                off = reader.offset(key)
                ok, payload = _outcome(lambda: reader.read_idx(key))
                if off in o.starts:
                    assert ok and payload == o.payload[o.starts[off]], f"key {key} at record start {off} misread"
                else:
                    assert not ok, f"key {key} at offset {off} (not a record start) read {payload[:16]!r}"
            reader.close()
            ok, ds = _outcome(lambda: RecordIOFaces(rec_path, idx_path, size=SIZE))
            if ok:
                for i in range(len(ds)):
                    ok, item = _outcome(lambda: ds[i])
                    if ok:
                        img, label = item
                        k = o.starts.get(reader.offset(int(ds.keys[i])))
                        assert k in o.image_keys and np.array_equal(img, o.image[k]) and label == CLASSES[k - 1]
            counter.add("opened")

    run()
    counter.report()


def test_fuzz_unpack_random_records():
    """unpack / unpack_img on arbitrary bytes and on valid records with random tails or cuts."""
    counter = Counter("recordio.unpack/unpack_img (raw bytes)")

    @fuzz(300)
    @given(data=st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, 2**32 - 1), st.floats(width=32), st.binary(max_size=200)).map(
            lambda t: struct.pack("<IfQQ", t[0], t[1], 1, 2) + t[2]),
        st.tuples(st.sampled_from(original().image_keys), st.integers(0, 10**6)).map(
            lambda t: original().payload[t[0]][: t[1]]),
    ))
    def run(data):
        with time_limit():
            ok, unpacked = _outcome(lambda: R.unpack(data))
            if ok:
                header, payload = unpacked
                assert header.flag >= 0 and isinstance(payload, bytes)
                if header.flag > 0:
                    assert len(header.label) == header.flag and len(payload) == len(data) - 24 - 4 * header.flag
                else:
                    assert len(payload) == len(data) - 24
            ok2, decoded = _outcome(lambda: R.unpack_img(data))
            if ok2:
                assert ok and decoded[1].dtype == np.uint8 and decoded[1].ndim == 3 and decoded[1].shape[2] == 3
                if any(data == original().payload[k] for k in original().image_keys):
                    pass
                elif any(original().payload[k].startswith(data) for k in original().image_keys):
                    raise AssertionError("a cut record decoded to an image")
        counter.add("image" if ok2 else "header" if ok else "refused")

    run()
    counter.report()


# ------------------------------------------------------------------ regressions found by the fuzzers
@pytest.mark.parametrize("text", [
    b"0\t0\n1\t-\n",                      # lone '-': numpy read it as offset 0 (record 0 under key 1)
    b"0\t0\n1\t40-\n",                    # trailing '-': read as 40
    b"0\t99999999999999999999\n",          # past int64: numpy saturated it, int() overflowed
    b"0\t0\n1 99999999999999999999\n",     # same on the slow path: OverflowError, not DataError
    b"-9223372036854775809\t0\n",          # saturated to +9223372036854775807
])
def test_idx_misparses_are_refused(tmp_path, text):
    (tmp_path / "a.idx").write_bytes(text)
    with pytest.raises(DataError, match="line|index"):
        R.read_index(tmp_path / "a.idx")


def test_idx_limits_still_parse(tmp_path):
    (tmp_path / "a.idx").write_bytes(b"-9223372036854775808\t9223372036854775807\r\n-3\t4\n")
    keys, offsets = R.read_index(tmp_path / "a.idx")
    assert keys.tolist() == [-2**63, -3] and offsets.tolist() == [2**63 - 1, 4]


def test_header_claiming_billions_of_images_is_refused_quickly(tmp_path):
    """Record 0 label [8589934592, ...]: used to allocate a 64 GiB key range (MemoryError or a hang)."""
    o = original()
    data = bytearray(o.rec)
    struct.pack_into("<f", data, o.records[0]["offset"] + 8 + 24, 2.0 ** 33)
    rec, idx = write_case(tmp_path, rec=bytes(data))
    for skip_bad in (False, True):
        with time_limit(5), pytest.raises(DataError, match="header says images are records"):
            RecordIOFaces(rec, idx, skip_bad=skip_bad, size=SIZE)
    struct.pack_into("<f", data, o.records[0]["offset"] + 8 + 24, float("inf"))
    rec, idx = write_case(tmp_path, rec=bytes(data))
    with pytest.raises(DataError, match="first identity record"):  # was OverflowError
        RecordIOFaces(rec, idx, size=SIZE)


def test_corrupt_png_chunk_length_refused_before_decoding():
    """3 bytes deleted from a 24x24 PNG's IHDR: OpenCV 4.11 spent ~5 s and ~2.7 GB on it."""
    png = R.unpack(original().payload[1])[1]
    broken = R.pack(R.IRHeader(0, 1.0, 0, 0), png[:17] + png[20:])
    with time_limit(2), pytest.raises(DataError, match="PNG"):
        R.unpack_img(broken)


def test_jpeg_claiming_huge_size_refused_before_decoding():
    """A 112x112 JPEG whose SOF says 30000x30000: OpenCV took 35 s and 5 GB and returned an image."""
    ok, buf = cv2.imencode(".jpg", original().faces[0])
    jpeg = bytearray(buf.tobytes())
    sof = jpeg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, 30000, 30000)
    with time_limit(2), pytest.raises(DataError, match="30000x30000"):
        R.unpack_img(R.pack(R.IRHeader(0, 1.0, 0, 0), bytes(jpeg)))
    struct.pack_into(">HH", jpeg, sof + 5, SIZE, SIZE)  # a normal size still decodes
    assert R.unpack_img(R.pack(R.IRHeader(0, 1.0, 0, 0), bytes(jpeg)))[1].shape == (SIZE, SIZE, 3)


def test_corrupt_length_field_does_not_allocate_the_claimed_size(tmp_path):
    """A first frame claiming 2**29-1 bytes in a 5 KB file: refused as truncated without a 512 MB read."""
    import tracemalloc

    o = original()
    data = bytearray(o.rec)
    frame = o.records[1]["offset"]
    struct.pack_into("<I", data, frame + 4, (1 << 29) - 1)
    rec, idx = write_case(tmp_path, rec=bytes(data))
    reader = R.IndexedRecordIO(rec, idx)
    tracemalloc.start()
    with pytest.raises(DataError, match="truncated"):
        reader.read_idx(1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20


def test_huge_whole_label_is_refused(tmp_path):
    """A flipped exponent bit made a label 1e30 (a whole number): labels() raised OverflowError."""
    o = original()
    data = bytearray(o.rec)
    struct.pack_into("<f", data, o.records[1]["offset"] + 8 + 4, 1e30)
    rec, idx = write_case(tmp_path, rec=bytes(data))
    ds = RecordIOFaces(rec, idx, size=SIZE)
    with pytest.raises(DataError, match="past 2\\*\\*24"):
        ds.labels()
    with pytest.raises(DataError, match="past 2\\*\\*24"):
        ds[0]
    assert RecordIOFaces(rec, idx, size=SIZE, skip_bad=True).labels().tolist() == [-1] + CLASSES[1:]
