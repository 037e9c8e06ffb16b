"""Every registered face finder (faces/finders.FACE_FINDERS) keeps the FaceFinder contract:
a Finding for any photo, "too small" for tiny ones, the two-value form agreeing with ``find``,
landmarks float32 [5, 2] with a box and a score when a face is found, and a miss hint that is
text or None."""
import numpy as np
import pytest

from insightface_g2d.faces import finders
from insightface_g2d.faces.face_finding import MIN_PHOTO_SIDE, Finding


def _build(name, tmp_path):
    if name in ("g2d", "dlib"):
        pytest.importorskip("dlib")
        pytest.importorskip("face_recognition_models")
        return finders.build_finder(finders.finder_spec(name)), finders.finder_spec(name)
    if name == "scrfd":
        pytest.importorskip("insightface")
        from test_data_prepare import _fake_scrfd

        _fake_scrfd(tmp_path / "det_fake.onnx")
        spec = finders.finder_spec(str(tmp_path / "det_fake.onnx"))
        return finders.build_finder(spec), spec
    pytest.fail(f"add a case for the new finder {name!r} to {__file__}")


@pytest.mark.parametrize("name", sorted(finders.FACE_FINDERS))
def test_finder_contract(name, tmp_path, one_torch_thread):
    finder, spec = _build(name, tmp_path)
    tiny = finder.find(np.zeros((MIN_PHOTO_SIDE - 1, 200, 3), np.uint8))
    assert isinstance(tiny, Finding) and tiny.outcome == "too small" and tiny.landmarks is None
    assert f"200x{MIN_PHOTO_SIDE - 1} px" in tiny.reason
    photo = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    found = finder.find(photo)
    assert isinstance(found, Finding) and found.outcome in ("found", "no face")
    lmk, why = finder(photo)
    if found.landmarks is None:
        assert lmk is None and why == found.reason and found.reason
    else:
        assert found.landmarks.shape == (5, 2) and found.landmarks.dtype == np.float32
        np.testing.assert_array_equal(lmk, found.landmarks)
        assert why == found.source and found.faces >= 1 and np.isfinite(found.score)
    hint = finders.miss_hint(spec)
    assert hint is None or (isinstance(hint, str) and hint)
