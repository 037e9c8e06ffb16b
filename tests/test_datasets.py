"""ImageFolderFaces and build_face_dataset: layouts, labels, resizing, fingerprints, clear errors."""
import cv2
import numpy as np
import pytest

from insightface_g2d.data.factory import build_face_dataset, parse_synthetic_spec
from insightface_g2d.data.folder import ImageFolderFaces
from insightface_g2d.data.synthetic import SyntheticFaces
from insightface_g2d.errors import ConfigError, DataError


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def solid(h, w, rgb):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb
    return img


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "faces"
    write_rgb(root / "zoe" / "1.png", solid(112, 112, (200, 10, 10)))
    write_rgb(root / "adam" / "b.png", solid(112, 112, (10, 200, 10)))
    write_rgb(root / "adam" / "a.jpg", solid(112, 112, (10, 10, 200)))
    write_rgb(root / "mia" / "x.PNG", solid(120, 100, (50, 60, 70)))   # not 112x112: resized
    cv2.imwrite(str(root / "mia" / "grey.png"), np.full((112, 112), 90, np.uint8))
    (root / "mia" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    return root


def test_image_folder_labels_order_and_pixels(folder):
    ds = ImageFolderFaces(folder)
    assert ds.classes == ["adam", "mia", "zoe"] and ds.num_classes == 3 and len(ds) == 5
    assert [rel for rel, _ in ds.items] == ["adam/a.jpg", "adam/b.png", "mia/grey.png", "mia/x.PNG", "zoe/1.png"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2]
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.dtype == np.uint8 and img.shape == (112, 112, 3) and label == ds.labels[i]
    # RGB channel order survives the round trip (PNG is lossless; JPEG nearly).
    np.testing.assert_array_equal(ds[1][0][56, 56], [10, 200, 10])
    np.testing.assert_allclose(ds[0][0][56, 56], [10, 10, 200], atol=6)
    np.testing.assert_array_equal(ds[2][0][0, 0], [90, 90, 90])        # grey -> 3 channels
    np.testing.assert_array_equal(ds[3][0][56, 56], [50, 60, 70])      # resized solid colour
    assert ImageFolderFaces(folder, size=64)[0][0].shape == (64, 64, 3)


def test_image_folder_fingerprint(folder):
    fp = ImageFolderFaces(folder).fingerprint()
    assert fp == ImageFolderFaces(folder).fingerprint() and len(fp) == 16
    write_rgb(folder / "zoe" / "2.png", solid(112, 112, (1, 2, 3)))
    fp2 = ImageFolderFaces(folder).fingerprint()
    assert fp2 != fp
    write_rgb(folder / "zoe" / "2.png", np.random.default_rng(0).integers(0, 255, (112, 112, 3), np.uint8))
    assert ImageFolderFaces(folder).fingerprint() != fp2  # same names, other size


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderFaces(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        ImageFolderFaces(tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no identity sub-folders"):
        ImageFolderFaces(empty)
    loose = tmp_path / "loose"
    write_rgb(loose / "a.png", solid(112, 112, (1, 1, 1)))
    with pytest.raises(DataError, match="found 1 images directly in it"):
        ImageFolderFaces(loose)
    (folder / "bob").mkdir()
    with pytest.raises(DataError, match="bob has no images"):
        ImageFolderFaces(folder)
    (folder / "bob").rmdir()
    (folder / "zoe" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    ds = ImageFolderFaces(folder)
    bad = [rel for rel, _ in ds.items].index("zoe/broken.jpg")
    with pytest.raises(DataError, match=r"zoe[/\\]broken\.jpg"):
        ds[bad]


def test_parse_synthetic_spec():
    assert parse_synthetic_spec("synthetic") == {}
    assert parse_synthetic_spec(" synthetic: ids=100, per_id=10,seed=3,offset=1000 ") == {
        "num_identities": 100, "images_per_identity": 10, "seed": 3, "identity_offset": 1000}
    for bad, msg in [("synthetic:ids", "key=value"), ("synthetic:people=3", "keys ids"),
                     ("synthetic:ids=ten", "not an integer")]:
        with pytest.raises(DataError, match=msg):
            parse_synthetic_spec(bad)


def test_factory_synthetic():
    ds = build_face_dataset("synthetic")
    assert isinstance(ds, SyntheticFaces) and ds.fingerprint() == SyntheticFaces().fingerprint()
    ds = build_face_dataset("synthetic:ids=7,per_id=3,seed=3,offset=10", size=64)
    assert (ds.num_classes, len(ds), ds.seed, ds.identity_offset, ds.size) == (7, 21, 3, 10, 64)
    assert ds[0][0].shape == (64, 64, 3)
    with pytest.raises(ConfigError, match="seed"):
        build_face_dataset("synthetic:seed=1", seed=2)
    with pytest.raises(DataError, match="num_identities"):
        build_face_dataset("synthetic:ids=0")


def test_factory_folder_and_recordio(tmp_path, folder):
    from insightface_g2d.data.recordio import IndexedRecordIOWriter, IRHeader, pack, pack_img
    from insightface_g2d.data.recordio_dataset import RecordIOFaces

    assert isinstance(build_face_dataset(str(folder)), ImageFolderFaces)
    assert build_face_dataset(folder, size=96)[0][0].shape == (96, 96, 3)

    faces = SyntheticFaces(3, 2, seed=4)
    rec_dir = tmp_path / "ms1m"
    rec_dir.mkdir()
    with IndexedRecordIOWriter(rec_dir / "train.rec", rec_dir / "train.idx") as w:
        w.write_idx(0, pack(IRHeader(2, [len(faces) + 1, len(faces) + 4], 0, 0), b""))
        for i in range(len(faces)):
            img, label = faces[i]
            w.write_idx(i + 1, pack_img(IRHeader(0, float(label), i + 1, 0), img, fmt=".png"))
    for spec in (rec_dir, str(rec_dir / "train.rec")):
        ds = build_face_dataset(spec)
        assert isinstance(ds, RecordIOFaces) and len(ds) == 6 and ds.num_classes == 3
        img, label = ds[3]
        assert label == 1
        np.testing.assert_array_equal(img, faces[3][0])  # PNG: lossless

    (rec_dir / "train.idx").unlink()
    with pytest.raises(DataError, match="train.idx"):
        build_face_dataset(rec_dir)
    with pytest.raises(DataError, match="train.idx"):
        build_face_dataset(rec_dir / "train.rec")


def test_factory_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist.*expected a folder with train.rec"):
        build_face_dataset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither train.rec nor identity sub-folders"):
        build_face_dataset(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a .rec file"):
        build_face_dataset(tmp_path / "notes.txt")
    (tmp_path / "train.idx").write_text("0\t0\n")
    with pytest.raises(DataError, match="pass .*train.rec"):
        build_face_dataset(tmp_path / "train.idx")
    with pytest.raises(DataError, match="non-empty"):
        build_face_dataset("")
