"""`g2d-mask` preview / apply, in process, on small temporary folders."""
import cv2
import numpy as np
import pytest

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.mask import main
from insightface_g2d.data.align import ARCFACE_TEMPLATE, transform_points
from insightface_g2d.masks.styles import MASK_POSITIONS, default_styles

WARP = np.array([[1.4, -0.25, 30.0], [0.25, 1.4, 20.0]])  # aligned crop -> 220x220 "photo"


def _face(seed):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8), (112, 112), interpolation=cv2.INTER_CUBIC)


@pytest.fixture()
def aligned_dir(tmp_path):
    root = tmp_path / "aligned"
    for i, rel in enumerate(["a/x.png", "a/y.jpg", "b/c/z.png"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), _face(i))
    return root


@pytest.fixture()
def photo_dir(tmp_path):
    """Unaligned 220x220 images and their landmarks TSV."""
    root = tmp_path / "photos"
    lines = ["path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5\tsource"]
    lmk = transform_points(ARCFACE_TEMPLATE, WARP)
    for i, rel in enumerate(["p/one.png", "q/two.png"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), cv2.warpAffine(_face(10 + i), WARP, (220, 220)))
        lines.append(rel + "\t" + "\t".join(f"{v:.3f}" for v in lmk.ravel()) + "\thog")
    tsv = tmp_path / "lmk.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return root, tsv


def test_help_exits_zero(capsys):
    for argv in (["--help"], ["preview", "--help"], ["apply", "--help"]):
        with pytest.raises(SystemExit) as ex:
            main(argv)
        assert ex.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_preview_grid(aligned_dir, tmp_path):
    out = tmp_path / "grid.png"
    assert run_cli(main, ["preview", "--input", str(aligned_dir), "--faces", "3", "--out", str(out),
                          "--seed", "1", "--no-labels"]) == 0
    grid = cv2.imread(str(out))
    rows = 1 + len(default_styles()) * len(MASK_POSITIONS)  # styles made for experiments only when named
    assert grid.shape == (rows * 112, 3 * 112, 3)
    # first row: the clean faces; every other row differs from it (masked)
    clean = grid[:112]
    for r in range(1, rows):
        assert np.abs(grid[r * 112:(r + 1) * 112].astype(int) - clean).mean() > 3
    # compact layout with labels: header strip + label column
    out2 = tmp_path / "compact.png"
    assert run_cli(main, ["preview", "--input", str(aligned_dir / "a" / "x.png"), str(aligned_dir / "b"),
                          "--cycle-positions", "--styles", "n95", "cloth", "--out", str(out2)]) == 0
    compact = cv2.imread(str(out2))
    assert compact.shape[0] > 3 * 112 and compact.shape[1] > 2 * 112


def test_preview_with_landmarks(photo_dir, tmp_path):
    root, tsv = photo_dir
    out = tmp_path / "g.png"
    assert run_cli(main, ["preview", "--input", str(root), "--landmarks", str(tsv), "--styles", "kn95",
                          "--positions", "normal", "--out", str(out), "--no-labels"]) == 0
    grid = cv2.imread(str(out))
    assert grid.shape == (2 * 112, 2 * 112, 3)
    # the aligned clean row reproduces the original crops (up to resampling and PNG)
    assert np.abs(grid[:112, :112].astype(int) - _face(10)).mean() < 6


def test_apply_aligned_tree_alpha_and_determinism(aligned_dir, tmp_path):
    out, alpha_dir = tmp_path / "out", tmp_path / "alpha"
    argv = ["apply", "--input", str(aligned_dir), "--aligned", "--out", str(out), "--alpha-out", str(alpha_dir),
            "--seed", "3", "--quiet"]
    assert run_cli(main, argv) == 0
    for rel in ["a/x.png", "a/y.jpg", "b/c/z.png"]:
        src, dst = cv2.imread(str(aligned_dir / rel)), cv2.imread(str(out / rel))
        assert dst.shape == src.shape == (112, 112, 3)
        a = cv2.imread(str((alpha_dir / rel).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert a.shape == (112, 112) and a.dtype == np.uint8 and a.max() == 255
        if rel.endswith(".png"):  # lossless: untouched where alpha is 0
            assert np.array_equal(dst[a == 0], src[a == 0])
        assert np.abs(dst[a == 255].astype(int) - src[a == 255]).mean() > 10
    first = (out / "b/c/z.png").read_bytes()
    assert run_cli(main, argv + ["--styles", "n95"]) == 0
    changed = (out / "b/c/z.png").read_bytes()
    assert run_cli(main, argv) == 0
    assert (out / "b/c/z.png").read_bytes() == first != changed


def test_apply_landmarks_full_images_and_crops(photo_dir, tmp_path):
    root, tsv = photo_dir
    out = tmp_path / "full"
    assert run_cli(main, ["apply", "--input", str(root), "--landmarks", str(tsv), "--out", str(out), "--quiet"]) == 0
    img = cv2.imread(str(out / "p/one.png"))
    assert img.shape == (220, 220, 3)
    assert not np.array_equal(img, cv2.imread(str(root / "p/one.png")))
    crops = tmp_path / "crops"
    assert run_cli(main, ["apply", "--input", str(root), "--landmarks", str(tsv), "--crop", "--out", str(crops),
                          "--quiet"]) == 0
    assert cv2.imread(str(crops / "q/two.png")).shape == (112, 112, 3)


def _error(capsys, argv):
    code = run_cli(main, argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs(capsys, aligned_dir, photo_dir, tmp_path):
    root, tsv = photo_dir
    out = str(tmp_path / "o")
    assert "not found" in _error(capsys, ["apply", "--input", str(tmp_path / "missing"), "--aligned", "--out", out])
    # not aligned and no landmarks
    assert "--landmarks" in _error(capsys, ["apply", "--input", str(root), "--aligned", "--out", out, "--quiet"])
    # an image the TSV does not list
    cv2.imwrite(str(root / "p" / "extra.png"), np.zeros((50, 50, 3), np.uint8))
    assert "extra.png" in _error(capsys, ["apply", "--input", str(root), "--landmarks", str(tsv), "--out", out])
    # an unreadable image
    (aligned_dir / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    assert "broken.jpg" in _error(capsys, ["apply", "--input", str(aligned_dir), "--aligned", "--out", out,
                                           "--quiet"])
    # output onto the input folder
    assert "input folder" in _error(capsys, ["apply", "--input", str(aligned_dir), "--aligned", "--out",
                                             str(aligned_dir)])
    # preview with nothing to show / a missing landmarks file
    assert "--input" in _error(capsys, ["preview", "--out", out + ".png"])
    assert "not found" in _error(capsys, ["preview", "--input", str(root), "--landmarks", str(tmp_path / "no.tsv"),
                                          "--out", out + ".png"])


def test_apply_needs_a_mode(capsys, aligned_dir, tmp_path):
    with pytest.raises(SystemExit) as ex:
        main(["apply", "--input", str(aligned_dir), "--out", str(tmp_path / "o")])
    assert ex.value.code == 2
    assert "--landmarks" in capsys.readouterr().err
