import numpy as np

from insightface_g2d.cli.evaluate import main
from insightface_g2d.data.synthetic import SyntheticFaces
from insightface_g2d.evaluation.binfile import load_bin


def test_make_bin_draws_labelled_pairs_from_a_dataset(tmp_path, capsys):
    out = tmp_path / "heldout.bin"
    spec = "synthetic:ids=6,per_id=3,seed=4,offset=500"
    assert main(["make-bin", "--dataset", spec, "--pairs", "20", "--out", str(out), "--quality", "100"]) == 0
    images, issame = load_bin(out)
    assert images.shape == (40, 112, 112, 3) and issame.shape == (20,) and issame.sum() == 10
    ds = SyntheticFaces(num_identities=6, images_per_identity=3, seed=4, identity_offset=500)
    faces = np.stack([ds[i][0] for i in range(len(ds))]).astype(np.int16)
    # every image is (up to JPEG loss) one of the dataset's faces; genuine pairs share the label
    match = [int(np.abs(faces - img.astype(np.int16)).mean(axis=(1, 2, 3)).argmin()) for img in images]
    labels = [ds[i][1] for i in match]
    for k, same in enumerate(issame):
        assert (labels[2 * k] == labels[2 * k + 1]) == bool(same)
        if same:
            assert match[2 * k] != match[2 * k + 1]
    assert "20 pairs (10 genuine)" in capsys.readouterr().out


def test_make_bin_bad_dataset_is_a_clear_error(tmp_path):
    from insightface_g2d.cli.common import run_cli

    assert run_cli(main, ["make-bin", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "x.bin")]) == 2
