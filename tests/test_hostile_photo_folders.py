"""The source side of `g2d-data align` and hostile image files (issue 28, item 4): symbolic link
loops in the photo folder are skipped with a reason in the report, image bombs of every format are
refused from their header before decoding, and a link at an aligned face's name in --out is
replaced like every other output name."""
import os
import struct

import cv2
import numpy as np
import pytest

from insightface_g2d.data import image_io as io_
from insightface_g2d.faces.align_folder import align_folder, read_align_report
from insightface_g2d.errors import DataError


def tiff_claiming(width, height):
    """A little-endian TIFF whose first IFD claims width x height (8-bit grey, one strip of 8 bytes)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 8 + 4), (277, 3, 1, 1), (279, 4, 1, 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd + bytes(8)


def webp_claiming(width, height, kind="VP8X"):
    if kind == "VP8X":
        body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + \
            (height - 1).to_bytes(3, "little")
    elif kind == "VP8L":
        body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14)
    else:
        body = b"VP8 " + struct.pack("<I", 10) + b"\0\0\0\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body + bytes(16)


def bmp_claiming(width, height):
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHH", 40, width, height, 1, 24) + bytes(24)


@pytest.mark.parametrize("name, data", [
    ("tiff", tiff_claiming(20000, 20000)), ("webp VP8X", webp_claiming(16000, 16000)),
    ("webp VP8L", webp_claiming(16000, 16000, "VP8L")), ("webp VP8", webp_claiming(16000, 16000, "VP8 ")),
    ("bmp", bmp_claiming(20000, -20000))])
def test_image_bombs_of_every_format_are_refused_before_decoding(name, data):
    img, reason = io_.try_decode_image_bytes(data, max_pixels=io_.MAX_PHOTO_PIXELS)
    assert img is None and "pixels (limit" in reason and "refused before decoding" in reason, reason


@pytest.mark.parametrize("ext", [".tif", ".webp", ".bmp", ".png", ".jpg"])
def test_real_images_of_every_format_still_decode(ext):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    data = cv2.imencode(ext, rgb)[1].tobytes()
    assert io_.image_bytes_problem(data) is None
    img, reason = io_.try_decode_image_bytes(data)
    assert reason is None and img.shape == (40, 30, 3)
    if ext == ".webp":  # lossless too
        lossless = cv2.imencode(ext, rgb, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
        assert io_.try_decode_image_bytes(lossless)[1] is None


def test_formats_whose_header_is_not_checked_are_not_decoded():
    ppm = b"P6\n20000 20000\n255\n" + bytes(16)
    img, reason = io_.try_decode_image_bytes(ppm, max_pixels=io_.MAX_PHOTO_PIXELS)
    assert img is None and "no image format the kit reads" in reason


def test_a_tiff_bomb_in_a_photo_folder_is_reported_not_decoded(tmp_path):
    (tmp_path / "photos" / "a").mkdir(parents=True)
    (tmp_path / "photos" / "a" / "bomb.tif").write_bytes(tiff_claiming(20000, 20000))
    with pytest.raises(DataError, match="a TIFF that claims 20000x20000 pixels"):
        io_.read_photo(tmp_path / "photos" / "a" / "bomb.tif")


def _landmarks_for(src, rels):
    lines = ["path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5"]
    for rel in rels:
        lines.append(rel + "\t" + "\t".join(f"{v:.1f}" for v in (38, 51, 73, 51, 56, 71, 41, 92, 70, 92)))
    path = src.parent / "landmarks5.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_symbolic_link_loops_in_the_photo_folder_are_skipped_with_a_reason(tmp_path):
    src = tmp_path / "photos"
    (src / "alice").mkdir(parents=True)
    cv2.imwrite(str(src / "alice" / "1.jpg"), np.full((112, 112, 3), 120, np.uint8))
    os.symlink("loop.jpg", src / "alice" / "loop.jpg")            # a file linking to itself
    os.symlink("ring", src / "ring")                              # an identity folder linking to itself
    landmarks = _landmarks_for(src, ["alice/1.jpg"])
    summary = align_folder(src, tmp_path / "out", landmarks=landmarks, progress=False)
    assert summary["aligned"] == 1 and (tmp_path / "out" / "alice" / "1.jpg").is_file()
    rows = {r["path"]: r for r in read_align_report(summary["report"])}
    for rel in ("alice/loop.jpg", "ring"):
        assert rows[rel]["outcome"] == "unreadable" and "symbolic link loop" in rows[rel]["reason"], rows


def test_a_link_at_an_aligned_faces_name_is_replaced_not_counted_done(tmp_path):
    src = tmp_path / "photos"
    (src / "alice").mkdir(parents=True)
    cv2.imwrite(str(src / "alice" / "1.jpg"), np.full((112, 112, 3), 120, np.uint8))
    landmarks = _landmarks_for(src, ["alice/1.jpg"])
    victim = tmp_path / "victim.jpg"
    victim.write_bytes(b"keep me")
    (tmp_path / "out" / "alice").mkdir(parents=True)
    os.symlink(victim, tmp_path / "out" / "alice" / "1.jpg")
    summary = align_folder(src, tmp_path / "out", landmarks=landmarks, progress=False)
    face = tmp_path / "out" / "alice" / "1.jpg"
    assert summary["aligned"] == 1 and summary["done_before"] == 0
    assert not face.is_symlink() and face.is_file() and victim.read_bytes() == b"keep me"
