"""LandmarkIndex: the one lookup of an image's landmarks by path (g2d-mask, g2d-data align, pairs)."""
import numpy as np
import pytest

from insightface_g2d.faces.landmarks import LandmarkIndex
from insightface_g2d.errors import DataError


def _rows(*keys):
    return {k: np.full((5, 2), i, np.float32) for i, k in enumerate(keys)}


def test_lookup_order(tmp_path):
    rows = _rows("A/A_0001.jpg", "B/B_0001.png", "lfw/C/C_0001.jpg", "C/C_0001.jpg", "x/D/D_1.jpg", "y/D/D_1.jpg")
    index = LandmarkIndex(rows)
    root = tmp_path / "faces"
    assert index.key(root / "A/A_0001.jpg", root) == "A/A_0001.jpg"       # 1. relative path
    assert index.key(root / "A/A_0001.png", root) == "A/A_0001.jpg"       # 2. other extension
    assert index.key(root / "B/B_0001.jpg", root) == "B/B_0001.png"
    # 3. the longest TSV path that ends the image's path
    assert index.key(tmp_path / "lfw/C/C_0001.jpg") == "lfw/C/C_0001.jpg"
    assert index.key(tmp_path / "other/C/C_0001.jpg") == "C/C_0001.jpg"
    # 4. same '<identity>/<file>': the first such row of the file
    assert index.key(root / "D/D_1.jpg", root) == "x/D/D_1.jpg"
    assert index.key(root / "E/E_1.jpg", root) is None
    assert np.array_equal(index.find(root / "B/B_0001.jpg", root), rows["B/B_0001.png"])
    assert index.find(root / "E/E_1.jpg", root) is None


def test_reads_a_tsv_and_names_it_in_errors(tmp_path):
    tsv = tmp_path / "lmk.tsv"
    header = "path\t" + "\t".join(f"{a}{i}" for i in range(1, 6) for a in "xy")
    tsv.write_text(header + "\nA/a.jpg\t" + "\t".join(str(v) for v in range(10)) + "\n")
    index = LandmarkIndex(tsv)
    assert np.array_equal(index.require(tmp_path / "A/a.jpg", tmp_path), np.arange(10, dtype=np.float32).reshape(5, 2))
    with pytest.raises(DataError, match=r"no landmarks for image .*b\.jpg in .*lmk\.tsv"):
        index.require(tmp_path / "A/b.jpg", tmp_path)
