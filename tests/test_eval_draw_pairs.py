"""Pairs drawn from a labelled dataset are distinct; asking for more than exist is refused."""
import itertools

import numpy as np
import pytest

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main
from insightface_g2d.errors import DataError
from insightface_g2d.evaluation.binfile import load_bin

SPEC_16_OF_4 = "synthetic:ids=4,per_id=4,seed=3,offset=700"


def brute_counts(labels):
    """(genuine, impostor) distinct unordered pairs, by listing them all."""
    pairs = list(itertools.combinations(range(len(labels)), 2))
    genuine = sum(labels[a] == labels[b] for a, b in pairs)
    return genuine, len(pairs) - genuine


@pytest.mark.parametrize("sizes", [(4, 4, 4, 4), (1, 2, 7), (3, 1, 1, 5, 2)])
def test_distinct_pair_counts_match_a_listing(sizes):
    from insightface_g2d.evaluation.draw_pairs import distinct_pair_counts

    labels = np.repeat(np.arange(len(sizes)), sizes)
    assert distinct_pair_counts(labels) == brute_counts(labels)


@pytest.mark.parametrize("num_pairs", [49, 30, 7])
def test_pairs_are_distinct_and_labelled(num_pairs):
    from insightface_g2d.training.evaluate import make_pairs

    labels = np.repeat(np.arange(4), 4)  # 16 faces of 4 people: 24 genuine, 96 impostor pairs
    pairs, same = make_pairs(labels, num_pairs, seed=1)
    keys = {(min(a, b), max(a, b)) for a, b in pairs.tolist()}
    assert len(keys) == num_pairs and int(same.sum()) == num_pairs // 2
    assert all((labels[a] == labels[b]) == s and a != b for (a, b), s in zip(pairs.tolist(), same))


def test_make_bin_refuses_more_pairs_than_exist(tmp_path, capsys):
    out = tmp_path / "x.bin"
    assert run_cli(main, ["make-bin", "--dataset", SPEC_16_OF_4, "--pairs", "1000", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and not out.exists()
    assert ("--pairs = 1000 asks for 500 genuine and 500 impostor pairs, but the 16 images of 4 identities allow only "
            "24 distinct genuine and 96 distinct impostor pairs; ask for at most 49 pairs") in err
    assert run_cli(main, ["make-bin", "--dataset", SPEC_16_OF_4, "--pairs", "49", "--out", str(out)]) == 0
    images, issame = load_bin(out)
    assert len(issame) == 49 and issame.sum() == 24
    # 49 distinct pairs: no two pairs show the same two faces
    flat = images.reshape(49, 2, -1)
    keys = {tuple(sorted((a.tobytes(), b.tobytes()))) for a, b in flat}
    assert len(keys) == 49


def test_config_eval_pair_count_is_checked_before_training(tmp_path):
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training

    from training_tools import write_job

    job = write_job(tmp_path, extra=f"config.eval = dict(enabled=True, pairs={SPEC_16_OF_4!r}, num_pairs=100)\n")
    with pytest.raises(DataError, match=r"config.eval.num_pairs = 100 asks for 50 genuine .* at most 49 pairs"):
        run_training(load_config(job), output=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
