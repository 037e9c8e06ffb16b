"""RecordIO reader/writer and RecordIOFaces: round trips, mxnet cross-checks, layouts, bad input."""
import logging
import pickle
import struct

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.recordio import main as recordio_main
from insightface_g2d.data import recordio as R
from insightface_g2d.data.recordio_dataset import RecordIOFaces
from insightface_g2d.errors import DataError

# mxnet 1.9.1 emits DeprecationWarnings (numpy tostring, distutils) on import and pack
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

M = R.MAGIC_BYTES
# float32 whose bytes are the magic word: a vector label holding it puts the magic at an aligned
# position of the payload, which makes the writer split the record into several frames.
MAGIC_FLOAT = struct.unpack("<f", M)[0]


def _mx():
    return pytest.importorskip("mxnet")


def faces(n, seed=0, size=112):
    """n smooth random uint8 [size, size, 3] RGB images."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        out.append(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC))
    return out


def write_arcface(folder, ids=3, per_id=2, fmt=".png", seed=0, vector_label=False):
    """arcface_torch layout: record 0 header, images 1..N, then one record per identity."""
    imgs = faces(ids * per_id, seed)
    labels = [i // per_id for i in range(ids * per_id)]
    n = len(imgs)
    rec, idx = folder / "train.rec", folder / "train.idx"
    with R.IndexedRecordIOWriter(rec, idx) as w:
        w.write_idx(0, R.pack(R.IRHeader(0, [n + 1, n + 1 + ids], 0, 0), b""))
        for k, (img, lab) in enumerate(zip(imgs, labels), 1):
            label = [lab, MAGIC_FLOAT] if vector_label else float(lab)
            w.write_idx(k, R.pack_img(R.IRHeader(0, label, k, 0), img, quality=3 if fmt == ".png" else 95,
                                      fmt=fmt))
        for c in range(ids):
            w.write_idx(n + 1 + c, R.pack(R.IRHeader(0, [1 + c * per_id, 1 + (c + 1) * per_id], 0, 0), b""))
    return rec, idx, imgs, labels


def write_plain(folder, keys, labels, fmt=".png", size=112, seed=1):
    imgs = faces(len(keys), seed, size)
    rec, idx = folder / "data.rec", folder / "data.idx"
    with R.IndexedRecordIOWriter(rec, idx) as w:
        for key, img, lab in zip(keys, imgs, labels):
            w.write_idx(key, R.pack_img(R.IRHeader(0, lab, key, 0), img, quality=1, fmt=fmt))
    return rec, idx, imgs


# ----------------------------------------------------------------------------------------- framing
def test_frame_record_follows_dmlc_spec():
    def fr(cflag, length):
        return M + struct.pack("<I", (cflag << 29) | length)

    assert R.frame_record(b"abc") == fr(0, 3) + b"abc\0"
    assert R.frame_record(b"") == fr(0, 0)
    # magic at an aligned position: split there, the magic itself is dropped
    assert R.frame_record(b"abcd" + M + b"xy") == fr(1, 4) + b"abcd" + fr(3, 2) + b"xy\0\0"
    assert R.frame_record(M + M) == fr(1, 0) + fr(2, 0) + fr(3, 0)
    assert R.frame_record(b"abcd" + M) == fr(1, 4) + b"abcd" + fr(3, 0)
    # magic at an unaligned position: not escaped
    assert R.frame_record(b"ab" + M + b"cd") == fr(0, 8) + b"ab" + M + b"cd"


def test_frame_record_rejects_too_large():
    big = np.zeros(1 << 29, dtype=np.uint8)  # calloc'd: no pages touched
    with pytest.raises(DataError, match="too large"):
        R.frame_record(memoryview(big))


def test_the_writer_puts_files_in_place_only_when_closed(tmp_path):
    rec, idx = tmp_path / "w.rec", tmp_path / "w.idx"
    rec.write_bytes(b"old rec")
    idx.write_text("old idx")
    with pytest.raises(RuntimeError, match="stopped"):
        with R.IndexedRecordIOWriter(rec, idx) as w:
            w.write_idx(0, b"first")
            raise RuntimeError("stopped")  # an interrupted packing run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.idx", "w.rec"]  # no temporary files left
    assert rec.read_bytes() == b"old rec" and idx.read_text() == "old idx"
    w = R.IndexedRecordIOWriter(rec, idx)
    w.write_idx(3, b"abc")
    assert rec.read_bytes() == b"old rec"  # not in place before close
    w.close()
    w.close()  # closing twice is harmless
    assert R.IndexedRecordIO(rec, idx).read_idx(3) == b"abc"
    assert idx.read_text() == "3\t0\n" and rec.read_bytes() == R.frame_record(b"abc")


def test_multipart_round_trip_and_build_index(tmp_path):
    rng = np.random.default_rng(3)
    payloads = [b"", M, M * 5, b"x" * 7 + M, b"ab" + M + b"cd"]
    for _ in range(20):
        words = rng.integers(0, 2**32, rng.integers(0, 60), dtype=np.uint64).astype("<u4")
        words[rng.random(words.size) < 0.3] = R.MAGIC
        payloads.append(words.tobytes() + bytes(rng.integers(0, 256, rng.integers(0, 4), dtype=np.uint8)))
    rec, idx = tmp_path / "m.rec", tmp_path / "m.idx"
    with R.IndexedRecordIOWriter(rec, idx) as w:
        for k, p in enumerate(payloads):
            w.write_idx(k, p)
    r = R.IndexedRecordIO(rec)
    assert r.keys == list(range(len(payloads))) and len(r) == len(payloads)
    assert [r.read_idx(k) for k in r.keys] == payloads
    assert sum(p.count(M) for p in payloads) > 50  # many splits were exercised
    # scanning the .rec rebuilds the same index
    assert R.build_index(rec, tmp_path / "scan.idx") == len(payloads)
    assert (tmp_path / "scan.idx").read_bytes() == idx.read_bytes()


# ------------------------------------------------------------------------------------------ header
def test_pack_unpack_round_trip():
    h, p = R.unpack(R.pack(R.IRHeader(7, 3.0, 42, 9), b"payload"))
    assert h == R.IRHeader(0, 3.0, 42, 9) and p == b"payload"  # numeric label forces flag 0
    h, p = R.unpack(R.pack((0, [1.5, -2.0, 7.0], 1, 2), b"xyz"))
    assert h.flag == 3 and h.id == 1 and h.id2 == 2 and p == b"xyz"
    np.testing.assert_array_equal(h.label, np.array([1.5, -2.0, 7.0], np.float32))
    rgb = faces(1)[0]
    h, img = R.unpack_img(R.pack_img(R.IRHeader(0, 5.0, 3, 0), rgb, quality=3, fmt=".png"))
    assert h.label == 5.0 and img.dtype == np.uint8
    np.testing.assert_array_equal(img, rgb)  # PNG: lossless, RGB in RGB out


def test_unpack_img_returns_rgb_where_mxnet_returns_bgr():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    rec = R.pack_img(R.IRHeader(0, 0.0, 0, 0), red, quality=3, fmt=".png")
    assert R.unpack_img(rec)[1][0, 0].tolist() == [255, 0, 0]
    # the stored image is red for any image viewer: cv2 (BGR) sees blue=0, red=255
    bgr = cv2.imdecode(np.frombuffer(R.unpack(rec)[1], np.uint8), cv2.IMREAD_COLOR)
    assert bgr[0, 0].tolist() == [0, 0, 255]
    try:
        import mxnet as mx
    except ImportError:
        return
    assert mx.recordio.unpack_img(rec)[1][0, 0].tolist() == [0, 0, 255]  # mxnet: BGR


# -------------------------------------------------------------------------------- mxnet cross-check
def test_pack_and_pack_img_bytes_equal_mxnet():
    mx = _mx()
    for header in [(0, 3.0, 5, 0), (0, [1.0, 2.5], 7, 1), (9, 0.0, 0, 0), (0, [2, MAGIC_FLOAT], 2**40, 3)]:
        assert R.pack(header, b"abc") == mx.recordio.pack(mx.recordio.IRHeader(*header), b"abc")
    rgb = faces(1)[0]
    for fmt, q in [(".jpg", 95), (".jpg", 50), (".png", 3)]:
        ours = R.pack_img((0, 4.0, 1, 0), rgb, quality=q, fmt=fmt)
        assert ours == mx.recordio.pack_img(mx.recordio.IRHeader(0, 4.0, 1, 0), rgb[..., ::-1], q, fmt)


def test_writer_byte_identical_to_mxnet(tmp_path):
    mx = _mx()
    rng = np.random.default_rng(5)
    payloads = [b"", b"a", b"ab" + M, M, M * 3 + b"q", b"abcd" + M + b"efgh" + M + b"i"]
    for _ in range(30):
        words = rng.integers(0, 2**32, rng.integers(0, 300), dtype=np.uint64).astype("<u4")
        words[rng.random(words.size) < 0.05] = R.MAGIC
        payloads.append(words.tobytes()[: rng.integers(0, 4 * words.size + 1)])
    keys = rng.permutation(1000)[: len(payloads)]
    w_mx = mx.recordio.MXIndexedRecordIO(str(tmp_path / "mx.idx"), str(tmp_path / "mx.rec"), "w")
    with R.IndexedRecordIOWriter(tmp_path / "ours.rec", tmp_path / "ours.idx") as w:
        for k, p in zip(keys, payloads):
            w_mx.write_idx(int(k), p)
            w.write_idx(k, p)
    w_mx.close()
    assert (tmp_path / "ours.rec").read_bytes() == (tmp_path / "mx.rec").read_bytes()
    assert (tmp_path / "ours.idx").read_bytes() == (tmp_path / "mx.idx").read_bytes()


def test_mxnet_written_file_read_by_ours(tmp_path):
    mx = _mx()
    imgs = faces(6, seed=2)
    labels = [3.0, [1.0, 2.0], 0.0, [4.0, MAGIC_FLOAT, 9.0], 2.0, [5.0]]
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "t.idx"), str(tmp_path / "t.rec"), "w")
    for k, (img, lab) in enumerate(zip(imgs, labels)):
        w.write_idx(10 + k, mx.recordio.pack_img(mx.recordio.IRHeader(0, lab, k, 0), img[..., ::-1], 90))
    w.close()
    ours = R.IndexedRecordIO(tmp_path / "t.rec", tmp_path / "t.idx")
    theirs = mx.recordio.MXIndexedRecordIO(str(tmp_path / "t.idx"), str(tmp_path / "t.rec"), "r")
    assert ours.keys == theirs.keys == list(range(10, 16))
    for key, lab in zip(ours.keys, labels):
        rec = ours.read_idx(key)
        assert rec == theirs.read_idx(key)
        h, img = R.unpack_img(rec)
        mh, mimg = mx.recordio.unpack_img(rec, 1)
        np.testing.assert_array_equal(img, mimg[..., ::-1])  # decoded pixels equal, BGR -> RGB
        np.testing.assert_array_equal(img, mx.image.imdecode(mx.recordio.unpack(rec)[1]).asnumpy())
        np.testing.assert_array_equal(np.asarray(h.label), np.asarray(lab, np.float32))
        assert h.flag == mh.flag and h.id == mh.id


def test_ours_read_by_mxnet(tmp_path):
    mx = _mx()
    rec, idx, imgs, labels = write_arcface(tmp_path, ids=3, per_id=2, fmt=".jpg", vector_label=True)
    theirs = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "r")
    ours = R.IndexedRecordIO(rec, idx)
    assert theirs.keys == ours.keys
    for key in ours.keys:
        assert theirs.read_idx(key) == ours.read_idx(key)
    for k, (img, lab) in enumerate(zip(imgs, labels), 1):
        h, bgr = mx.recordio.unpack_img(theirs.read_idx(k), 1)
        assert h.label.tolist() == [lab, MAGIC_FLOAT]
        np.testing.assert_array_equal(bgr[..., ::-1], R.unpack_img(ours.read_idx(k))[1])
        assert np.abs(bgr[..., ::-1].astype(int) - img).mean() < 4  # JPEG of the same RGB face
    h0, _ = mx.recordio.unpack(theirs.read_idx(0))
    assert h0.flag == 2 and h0.label.tolist() == [7, 10]


# ------------------------------------------------------------------------------------------ dataset
def test_dataset_arcface_layout_matches_arcface_torch_reading(tmp_path):
    rec, idx, imgs, labels = write_arcface(tmp_path, ids=4, per_id=3, fmt=".jpg", vector_label=True)
    ds = RecordIOFaces(tmp_path)  # folder with train.rec / train.idx
    assert ds.layout == "arcface" and ds.header0 == (13, 17) and len(ds) == 12
    assert ds.keys.tolist() == list(range(1, 13))
    assert ds.num_classes == 4 and ds.labels().tolist() == labels
    try:
        import mxnet as mx
    except ImportError:
        mx = None
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.shape == (112, 112, 3) and img.dtype == np.uint8 and label == labels[i]
        if mx is not None:  # what arcface_torch's MXFaceDataset returns for this index
            theirs = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "r")
            h, s = mx.recordio.unpack(theirs.read_idx(i + 1))
            assert int(h.label[0]) == label
            np.testing.assert_array_equal(img, mx.image.imdecode(s).asnumpy())


def test_dataset_plain_layout_any_keys(tmp_path):
    keys = [40, 3, 17, 8, 25]
    labels = [2.0, [0.0, 0.5], 4.0, 1.0, [2.0]]
    rec, idx, imgs = write_plain(tmp_path, keys, labels)
    ds = RecordIOFaces(rec)  # .idx found next to the .rec
    assert ds.layout == "plain" and ds.keys.tolist() == keys and len(ds) == 5
    assert ds.labels().tolist() == [2, 0, 4, 1, 2] and ds.num_classes == 5
    for i in range(5):
        img, label = ds[i]
        np.testing.assert_array_equal(img, imgs[i])
    assert ds[-1][1] == 2
    with pytest.raises(IndexError):
        ds[5]


def test_dataset_resizes_other_sizes_and_warns_once(tmp_path, caplog):
    rec, idx, imgs = write_plain(tmp_path, [0, 1, 2], [0.0, 1.0, 2.0], size=128)
    ds = RecordIOFaces(rec)
    with caplog.at_level(logging.WARNING):
        out = [ds[i][0] for i in range(3)]
    assert sum("resizing" in r.message for r in caplog.records) == 1
    assert all(o.shape == (112, 112, 3) for o in out)
    expect = cv2.resize(imgs[1], (112, 112), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[1], expect)


def test_fingerprint_stable_and_content_sensitive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_arcface(tmp_path / "a", ids=2, per_id=2)
    write_arcface(tmp_path / "b", ids=2, per_id=3)
    fa = RecordIOFaces(tmp_path / "a").fingerprint()
    assert fa == RecordIOFaces(tmp_path / "a").fingerprint() and len(fa) == 16
    int(fa, 16)
    assert fa != RecordIOFaces(tmp_path / "b").fingerprint()


def test_dataloader_workers_and_pickle(tmp_path):
    rec, idx, imgs, labels = write_arcface(tmp_path, ids=4, per_id=4, fmt=".jpg")
    ds = RecordIOFaces(tmp_path)
    serial = [ds[i] for i in range(len(ds))]  # opens the file in the parent before forking
    assert ds.reader._fd is not None
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context="fork")
    got_imgs, got_labels = [], []
    for x, y in loader:
        got_imgs.append(x.numpy())
        got_labels += y.tolist()
    assert got_labels == labels
    np.testing.assert_array_equal(np.concatenate(got_imgs), np.stack([s[0] for s in serial]))
    state = ds.reader.__getstate__()
    assert state["_fd"] is None
    ds2 = pickle.loads(pickle.dumps(ds))
    assert ds2.reader._fd is None and ds2[5][1] == labels[5]
    np.testing.assert_array_equal(ds2[5][0], serial[5][0])


# ---------------------------------------------------------------------------------------- bad input
def test_missing_files_and_index_tool(tmp_path):
    with pytest.raises(DataError, match="not found"):
        R.IndexedRecordIO(tmp_path / "none.rec")
    with pytest.raises(DataError, match="no train.rec"):
        RecordIOFaces(tmp_path)
    rec, idx, _ = write_plain(tmp_path, [0, 1, 2], [0.0, 1.0, 1.0])
    original = idx.read_bytes()
    idx.unlink()
    with pytest.raises(DataError, match=r"index file not found.*recordio index"):
        RecordIOFaces(rec)
    assert recordio_main(["index", str(rec)]) == 0
    assert idx.read_bytes() == original
    assert run_cli(recordio_main, ["index", str(rec)]) == 2  # exists, no --force
    assert len(RecordIOFaces(rec)) == 3


def _corrupt(tmp_path, n=6):
    rec, idx, imgs = write_plain(tmp_path, list(range(n)), [float(i) for i in range(n)])
    return rec, idx, bytearray(rec.read_bytes()), R.IndexedRecordIO(rec, idx).offsets.tolist()


def test_bad_records_raise_clear_errors(tmp_path):
    rec, idx, data, offs = _corrupt(tmp_path)
    # wrong magic at record 2
    bad = bytearray(data)
    bad[offs[2]:offs[2] + 4] = b"JUNK"
    rec.write_bytes(bad)
    with pytest.raises(DataError, match=r"record key 2.*wrong magic"):
        RecordIOFaces(rec)[2]
    # payload that is not an image
    bad = bytearray(data)
    bad[offs[3] + 8 + 24:offs[3] + 8 + 40] = b"\0" * 16
    rec.write_bytes(bad)
    with pytest.raises(DataError, match=r"record key 3.*not a decodable image"):
        RecordIOFaces(rec)[3]
    # header flag claims more labels than bytes
    bad = bytearray(data)
    bad[offs[1] + 8:offs[1] + 12] = struct.pack("<I", 10**6)
    rec.write_bytes(bad)
    with pytest.raises(DataError, match=r"record key 1.*flag says 1000000"):
        RecordIOFaces(rec)[1]
    # label that is not a class id
    bad = bytearray(data)
    bad[offs[4] + 12:offs[4] + 16] = struct.pack("<f", 2.5)
    rec.write_bytes(bad)
    with pytest.raises(DataError, match=r"record key 4.*label 2.5"):
        RecordIOFaces(rec).num_classes
    # truncated file: last record cut; another record's idx offset past the end
    rec.write_bytes(data[:offs[5] + 100])
    with pytest.raises(DataError, match=r"record key 5.*truncated"):
        R.IndexedRecordIO(rec, idx).read_idx(5)
    with open(idx, "a") as f:
        f.write(f"6\t{len(data) + 40}\n")
    with pytest.raises(DataError, match=r"point past the end"):
        RecordIOFaces(rec)
    with pytest.raises(DataError, match=r"record key 6.*past the end"):
        R.IndexedRecordIO(rec, idx).read_idx(6)
    with pytest.raises(DataError, match=r"no record with key 99"):
        R.IndexedRecordIO(rec, idx).read_idx(99)
    idx.write_text("0\t0\nnot an index line\n")
    with pytest.raises(DataError, match=r"line 2"):
        R.IndexedRecordIO(rec, idx)


def test_skip_bad_replaces_with_next_good_record(tmp_path, caplog):
    rec, idx, data, offs = _corrupt(tmp_path, n=6)
    bad = bytearray(data)
    bad[offs[2] + 8 + 24:offs[2] + 8 + 40] = b"\0" * 16  # not an image
    bad[offs[3]:offs[3] + 4] = b"JUNK"  # wrong magic
    rec.write_bytes(bad)
    with pytest.raises(DataError):
        RecordIOFaces(rec)[2]
    ds = RecordIOFaces(rec, skip_bad=True)
    good = RecordIOFaces(rec)
    with caplog.at_level(logging.WARNING):
        img, label = ds[2]
    assert label == 4 and ds.bad_count == 2  # 2 and 3 are bad -> record 4, with its own label
    np.testing.assert_array_equal(img, good[4][0])
    assert ds[3][1] == 4 and ds.bad_count == 2  # known bad indices are not re-read
    assert ds[5][1] == 5 and ds[0][1] == 0
    assert any("skipped 2 bad record" in r.message for r in caplog.records)
    assert ds.labels().tolist() == [0, 1, 2, -1, 4, 5] and ds.num_classes == 6


def test_decode_without_imread_color_rgb_gives_same_pixels(monkeypatch):
    rec = R.pack_img(R.IRHeader(0, 1.0, 0, 0), faces(1, seed=9)[0], quality=90)
    fast = R.unpack_img(rec)[1]
    from insightface_g2d.data import image_io

    monkeypatch.setattr(image_io, "_IMREAD_RGB", None)  # OpenCV < 4.10: BGR decode + cvtColor
    slow = R.unpack_img(rec)[1]
    np.testing.assert_array_equal(fast, slow)
    assert slow.flags["C_CONTIGUOUS"] and slow.shape == (112, 112, 3)


def test_reader_large_records_sparse_index_and_truncated_scan(tmp_path):
    rng = np.random.default_rng(11)
    big = bytearray(rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())  # > the 1 MiB first read
    big[(1 << 20) + 4:(1 << 20) + 8] = M  # aligned magic far beyond the first read: multi-frame record
    payloads = [b"small", bytes(big), b"tail" * 3]
    rec, idx = tmp_path / "big.rec", tmp_path / "big.idx"
    with R.IndexedRecordIOWriter(rec, idx) as w:
        for k, p in enumerate(payloads):
            w.write_idx(k, p)
    r = R.IndexedRecordIO(rec)
    assert [r.read_idx(k) for k in range(3)] == payloads
    assert R.unpack(R.pack((0, 2.0, 0, 0), payloads[1]))[1] == payloads[1]
    # an index listing only some records: extents span several records, reads stay exact
    sparse = tmp_path / "sparse.idx"
    sparse.write_text(f"7\t{r.offset(0)}\n")
    assert R.IndexedRecordIO(rec, sparse).read_idx(7) == b"small"
    # scanning a file cut inside the multi-frame record names that record
    cut = tmp_path / "cut.rec"
    cut.write_bytes(rec.read_bytes()[: r.offset(1) + (2 << 20)])
    with pytest.raises(DataError, match=r"record key 1 .*truncated"):
        R.build_index(cut)
    assert not (tmp_path / "cut.idx").exists()
