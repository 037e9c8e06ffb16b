"""The front-end benchmark's real-photo score: every reference face of a photo counts, photos without a
clear face are left out, and the shipped reference of the public masked-photo set is well formed."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from insightface_g2d.data.align import ARCFACE_TEMPLATE
from insightface_g2d.faces.face_finding import FaceFinder, Finding

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_front_end", REPO / "benchmarks" / "bench_front_end.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


class _Fixed(FaceFinder):
    """Returns the five points `faces[photo width]` (None: no face)."""

    def __init__(self, faces):
        self.faces = faces

    def _find(self, img):
        lmk = self.faces.get(img.shape[1])
        return Finding(np.asarray(lmk, np.float32), 0.9, 1, outcome="found") if lmk is not None else Finding()


def _face_at(x, y, iod):
    a = ARCFACE_TEMPLATE.astype(np.float64)
    return (a - a[:2].mean(0)) * iod / np.linalg.norm(a[1] - a[0]) + [x, y]


def test_real_photo_score_counts_any_clear_face_of_a_photo(tmp_path):
    for name, width in (("group.png", 400), ("single.png", 300), ("small.png", 200), ("none.png", 100)):
        cv2.imwrite(str(tmp_path / name), np.zeros((120, width, 3), np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    ref = tmp_path / "ref.tsv"
    ref.write_text("path\tx1\ty1\tx2\ty2\tsource\n"
                   "group.png\t70\t50\t150\t50\tcnn+68\n"          # two clear faces, 80 px eye distance
                   "group.png\t250\t50\t330\t50\tby hand\n"
                   "single.png\t100\t60\t170\t60\tcnn+68\n"        # one clear face, 70 px
                   "small.png\t20\t40\t50\t40\tcnn+68\n")          # 30 px: not clear
    reference = bench.read_reference(ref)
    assert [len(reference[p]) for p in ("group.png", "single.png", "small.png")] == [2, 1, 1]
    np.testing.assert_allclose(reference["group.png"][1][0], [290.0, 50.0])
    assert reference["group.png"][1][1] == pytest.approx(80.0)
    finders = {
        "second person": _Fixed({400: _face_at(290, 50, 80), 300: _face_at(135 + 36, 60, 70)}),  # 36 px off: > 35
        "both": _Fixed({400: _face_at(110, 52, 78), 300: _face_at(135 + 20, 62, 70), 200: _face_at(35, 40, 30)}),
        "nothing": _Fixed({}),
    }
    res, total, clear, found = bench.real_photos(finders, tmp_path, 60, reference, lambda m: None)
    assert (total, clear) == (5, 2)  # the broken file counts as a photo, the small face is not clear
    assert {n: r["clear found"] for n, r in res.items()} == {"second person": 1, "both": 2, "nothing": 0}
    assert res["both"]["any face"] == 3 and sorted(found["both"]) == ["group.png", "single.png", "small.png"]
    # without a reference the clear faces are those any candidate found with that eye distance
    res2, _, clear2, _ = bench.real_photos(finders, tmp_path, 60, None, lambda m: None)
    assert clear2 == 2 and res2["nothing"]["clear found"] == 0 and res2["both"]["clear found"] == 2


def test_the_shipped_masked_photo_reference_is_well_formed():
    path = REPO / "benchmarks" / "data" / "real_masked_reference.tsv"
    rows = [ln.split("\t") for ln in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["path", "x1", "y1", "x2", "y2", "source"]
    assert all(len(r) == 6 for r in rows[1:]) and len(rows) > 500
    eyes = np.array([[float(v) for v in r[1:5]] for r in rows[1:]]).reshape(-1, 2, 2)
    assert (np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1) > 0).all()
    assert sum(r[5].startswith("by hand") for r in rows[1:]) == 16
    reference = bench.read_reference(path)
    assert sum(any(iod >= 60 for _, iod in faces) for faces in reference.values()) == 361  # docs/data.md


def test_moved_masks_sit_off_the_exact_frame_by_a_bounded_similarity():
    from insightface_g2d.data.align import estimate_similarity

    lmk = _face_at(200.0, 150.0, 50.0)
    seen = []
    for k in range(200):
        moved = bench.moved_landmarks(lmk, np.random.default_rng(k))
        m = estimate_similarity(lmk, moved)  # the similarity taking the face to where its mask is drawn
        scale, turn = np.hypot(m[0, 0], m[1, 0]), np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        np.testing.assert_allclose(lmk @ m[:, :2].T + m[:, 2], moved, atol=1e-6)  # exactly a similarity
        shift = (moved.mean(0) - lmk.mean(0)) / 50.0
        assert abs(np.log(scale)) <= bench.MOVE_SCALE + 1e-9 and abs(turn) <= bench.MOVE_TURN + 1e-9
        assert np.abs(shift).max() <= bench.MOVE_SHIFT + 1e-9
        seen.append((np.log(scale), turn, *shift))
    seen = np.array(seen)
    # the moves fill their ranges: every bound is approached from both sides
    for col, bound in zip(range(4), (bench.MOVE_SCALE, bench.MOVE_TURN, bench.MOVE_SHIFT, bench.MOVE_SHIFT)):
        assert seen[:, col].max() > 0.8 * bound and seen[:, col].min() < -0.8 * bound
    np.testing.assert_array_equal(bench.moved_landmarks(lmk, np.random.default_rng(5)),
                                  bench.moved_landmarks(lmk, np.random.default_rng(5)))


def test_masked_photos_are_seeded_and_moved_masks_differ_from_exact_ones():
    from insightface_g2d.masks.synthesizer import MaskSynthesizer

    img = np.full((240, 240, 3), 128, np.uint8)
    lmk = _face_at(120.0, 110.0, 60.0)
    synth = MaskSynthesizer()
    exact = bench.masked_photo(synth, img, lmk, "a/b.jpg", "surgical", 0)
    np.testing.assert_array_equal(exact, bench.masked_photo(synth, img, lmk, "a/b.jpg", "surgical", 0))
    moved = bench.masked_photo(synth, img, lmk, "a/b.jpg", "surgical", 0, moved=True)
    np.testing.assert_array_equal(moved, bench.masked_photo(synth, img, lmk, "a/b.jpg", "surgical", 0, moved=True))
    assert (exact != img).any() and (moved != exact).any()
    # the same mask (its look drawn from the photo's own stream), only drawn from the moved landmarks
    again = synth.apply_landmarks(img, bench.moved_landmarks(lmk, bench.rng_for(0, "a/b.jpg|surgical|moved")),
                                  bench.rng_for(0, "a/b.jpg|surgical"), style="surgical")[0]
    np.testing.assert_array_equal(moved, again)
    assert bench.masked_photo(synth, img, lmk, "a/b.jpg", "clean", 0, moved=True) is img


def test_tight_crop_summary_and_per_photo_mask_styles():
    rows = {("clean", 0.7, 96): [(True, True), (True, False)], ("masked", 1.0, 96): [(False, False), (True, True)]}
    s = bench.summarize_crops(rows)
    assert s["all"] == (0.75, 2 / 3, 4)  # found 3 of 4; of those, 2 placed
    assert s["clean"] == (1.0, 0.5, 2) and s["masked"] == (0.5, 1.0, 2)
    assert s["fill 0.7"] == (1.0, 0.5, 2) and s["size 96"] == s["all"]
    styles = [bench.photo_style(0, f"p/{i}.jpg") for i in range(300)]
    assert styles == [bench.photo_style(0, f"p/{i}.jpg") for i in range(300)]  # a photo keeps its mask
    assert set(styles) == set(bench.MASK_STYLES)  # the held-out n95 and textured included
