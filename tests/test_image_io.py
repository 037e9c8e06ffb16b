"""insightface_g2d.data.image_io: untrusted image bytes are checked before OpenCV decodes them,
and every reader of user images (image folders, pairs lists, IJB, g2d-mask) goes through it."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from insightface_g2d.data import image_io as io_
from insightface_g2d.data.folder import ImageFolderFaces
from insightface_g2d.errors import DataError, OutputError


def _rgb(h=20, w=24, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


def _png(rgb):
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _jpeg_claiming(width, height, junk=b""):
    """A 112x112 JPEG whose frame header claims width x height; `junk` is put just before the SOF."""
    jpeg = bytearray(cv2.imencode(".jpg", np.zeros((112, 112, 3), np.uint8))[1].tobytes())
    sof = jpeg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, height, width)
    return bytes(jpeg[:sof]) + junk + bytes(jpeg[sof:])


def _png_claiming(width, height):
    png = bytearray(_png(np.zeros((8, 8, 3), np.uint8)))
    struct.pack_into(">II", png, 16, width, height)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_decode_round_trip_is_rgb_and_fit_square_resizes():
    rgb = _rgb()
    out, reason = io_.try_decode_image_bytes(_png(rgb))
    assert reason is None
    np.testing.assert_array_equal(out, rgb)  # PNG is lossless: exact RGB pixels back
    sq = io_.fit_square(out, 16)
    assert sq.shape == (16, 16, 3)
    np.testing.assert_array_equal(sq, cv2.resize(rgb, (16, 16), interpolation=cv2.INTER_AREA))
    assert io_.fit_square(sq, 16) is sq


@pytest.mark.parametrize("junk", [b"", b"\x00\x00", b"\x12" * 50, b"\xff\x00\xff\x00"])
def test_jpeg_claiming_huge_size_refused_even_behind_junk(junk, monkeypatch):
    # libjpeg skips junk between segments ("extraneous bytes before marker"), so the check must too
    data = _jpeg_claiming(30000, 30000, junk)
    problem = io_.image_bytes_problem(data)
    assert problem and "30000x30000" in problem
    real_imdecode = cv2.imdecode

    def must_not_decode(buf, flags):
        raise AssertionError("a hostile header reached cv2.imdecode")

    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    img, reason = io_.try_decode_image_bytes(data)
    assert img is None and "refused before decoding" in reason
    monkeypatch.setattr(cv2, "imdecode", real_imdecode)
    # the same junk before a sane frame header decodes (libjpeg warns and goes on)
    assert io_.try_decode_image_bytes(_jpeg_claiming(112, 112, junk))[0].shape == (112, 112, 3)


def test_photo_limit_is_larger_than_the_face_limit():
    photo = _jpeg_claiming(8000, 6000)  # a 48 Mpixel phone photo's header
    assert io_.image_bytes_problem(photo) is not None
    assert io_.image_bytes_problem(photo, max_pixels=io_.MAX_PHOTO_PIXELS) is None
    assert io_.image_bytes_problem(_jpeg_claiming(9000, 9000), max_pixels=io_.MAX_PHOTO_PIXELS) is not None


def test_opencv_errors_become_reasons():
    # past OpenCV's own 2**30-pixel limit with our check lifted: cv2.error, reported not raised
    img, reason = io_.try_decode_image_bytes(_png_claiming(70000, 70000), max_pixels=1 << 40)
    assert img is None and "OpenCV" in reason
    assert io_.try_decode_image_bytes(b"")[1] == "empty data"
    img, reason = io_.try_decode_image_bytes(b"GIF89a not really")
    assert img is None and "not a decodable image" in reason


def test_read_image_file_messages(tmp_path):
    with pytest.raises(DataError, match=r"^cannot read image .*nope\.jpg: file not found; replace"):
        io_.read_image_file(tmp_path / "nope.jpg")
    (tmp_path / "big.jpg").write_bytes(_jpeg_claiming(30000, 30000))
    with pytest.raises(DataError, match=r"^cannot read face .*big\.jpg: a JPEG that claims 30000x30000.*; check it$"):
        io_.read_image_file(tmp_path / "big.jpg", what="face", hint="check it")
    rgb = _rgb(seed=3)
    (tmp_path / "ok.png").write_bytes(_png(rgb))
    np.testing.assert_array_equal(io_.read_image_file(tmp_path / "ok.png"), rgb)


def test_every_user_image_reader_refuses_hostile_headers(tmp_path, monkeypatch):
    from insightface_g2d.data.image_io import read_photo
    from insightface_g2d.evaluation.pairs import load_pair_images, read_pairs

    root = tmp_path / "faces"
    (root / "ann").mkdir(parents=True)
    (root / "bob").mkdir()
    (root / "ann" / "ann_0001.png").write_bytes(_png(_rgb(112, 112, 1)))
    (root / "bob" / "bob_0001.jpg").write_bytes(_jpeg_claiming(30000, 30000))
    hostile = root / "bob" / "bob_0001.jpg"
    real_imdecode = cv2.imdecode
    decoded_sizes = []

    def watching_imdecode(buf, flags):  # the hostile file must be refused before OpenCV sees it
        decoded_sizes.append(len(buf))
        return real_imdecode(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", watching_imdecode)
    ds = ImageFolderFaces(root)
    with pytest.raises(DataError, match=r"bob[/\\]bob_0001\.jpg: a JPEG that claims 30000x30000"):
        ds[1]
    assert ds[0][0].shape == (112, 112, 3)
    with pytest.raises(DataError, match="bob_0001.jpg: a JPEG that claims"):
        read_photo(hostile)  # g2d-mask and g2d-data align read photos with it
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("ann/ann_0001.png\tbob/bob_0001.jpg\t0\n")
    with pytest.raises(DataError, match=r"bob_0001\.jpg: a JPEG that claims.*listed in .*pairs\.txt"):
        load_pair_images(root, read_pairs(pairs_file), workers=1)
    assert hostile.stat().st_size not in decoded_sizes
    assert (root / "ann" / "ann_0001.png").stat().st_size in decoded_sizes


def test_ijb_faces_refuse_hostile_headers(tmp_path):
    from insightface_g2d.evaluation.ijb import IJBFaces

    class Meta:  # the two things IJBFaces reads from its meta object
        image_names = ["1.jpg"]
        landmarks = np.zeros((1, 5, 2), np.float32)

        @staticmethod
        def image_path(i):
            return str(tmp_path / "1.jpg")

    (tmp_path / "1.jpg").write_bytes(_jpeg_claiming(30000, 30000))
    with pytest.raises(DataError, match=r"^cannot read IJB image .*1\.jpg: a JPEG that claims .*loose_crop"):
        IJBFaces(Meta())[0]


def test_write_image_round_trips_and_names_bad_targets(tmp_path):
    rgb = _rgb(seed=4)
    io_.write_image(tmp_path / "deep" / "a.png", rgb)  # folders are made
    np.testing.assert_array_equal(io_.read_image_file(tmp_path / "deep" / "a.png"), rgb)
    grey = rgb[..., 0]
    assert io_.encode_image_bytes(grey, ".png") == cv2.imencode(".png", grey)[1].tobytes()
    jpeg = io_.encode_image_bytes(rgb, "jpg", quality=80)
    assert jpeg == cv2.imencode(".jpg", rgb[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    with pytest.raises(DataError, match=r"cannot encode .* as \.xyz"):
        io_.write_image(tmp_path / "a.xyz", rgb)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"cannot write image .*file[/\\]b\.png'.*a file is in the way"):
        io_.write_image(tmp_path / "file" / "b.png", rgb)


def test_write_image_bytes_are_opencv_encoder_bytes(tmp_path):
    rgb = _rgb(31, 17, seed=5)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cases = [("a.png", {}, cv2.imencode(".png", bgr)),
             ("b.jpg", {"quality": 80}, cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])),
             ("c.png", {"png_compression": 3}, cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])),
             ("d.png", {}, cv2.imencode(".png", rgb[..., 0]))]
    for name, options, (ok, expected) in cases:
        img = rgb[..., 0] if name == "d.png" else rgb
        assert ok and io_.write_image(tmp_path / name, img, **options) == tmp_path / name
        assert (tmp_path / name).read_bytes() == expected.tobytes()


def test_palette_png_is_pillows_own_file(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    rgb = _rgb(40, 50, seed=6)
    io_.write_image(tmp_path / "p.png", rgb, colors=16)
    pil.fromarray(rgb).quantize(colors=16, method=pil.Quantize.MEDIANCUT, dither=pil.Dither.NONE).save(
        tmp_path / "direct.png", optimize=True)
    assert (tmp_path / "p.png").read_bytes() == (tmp_path / "direct.png").read_bytes()
    with pytest.raises(DataError, match=r"palette .*\.png"):
        io_.write_image(tmp_path / "p.jpg", rgb, colors=16)


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, lambda: OSError(28, "No space left on device")])
def test_an_interrupted_image_write_leaves_no_partial_file(tmp_path, monkeypatch, interruption):
    from insightface_g2d import fileio

    rgb = _rgb(seed=7)
    io_.write_image(tmp_path / "old.png", rgb[::-1])
    old = (tmp_path / "old.png").read_bytes()

    def cut(fd):  # the bytes are in the temporary file, not yet in place
        raise interruption()

    monkeypatch.setattr(fileio.os, "fsync", cut)
    with pytest.raises(KeyboardInterrupt if interruption is KeyboardInterrupt else OutputError):
        io_.write_image(tmp_path / "new.png", rgb)
    with pytest.raises(KeyboardInterrupt if interruption is KeyboardInterrupt else OSError):
        io_.save_image_bytes(tmp_path / "old.png", io_.encode_image_bytes(rgb))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]  # no new file, no temporary file
    assert (tmp_path / "old.png").read_bytes() == old
