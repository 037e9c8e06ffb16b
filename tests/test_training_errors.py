"""Bad input stops g2d-train early with a message that says what is wrong and what to do."""
import pytest
import torch

from insightface_g2d import get_model
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.train import main
from insightface_g2d.errors import CheckpointError, ConfigError, DataError
from insightface_g2d.training.config import load_config
from insightface_g2d.training.runner import run_training

from training_tools import one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)
REFORM_ONLY = '[dict(name="reform", steps=1)]'


def _teacher_file(tmp_path, network="g2d_t", dim=32):
    path = tmp_path / "teacher.pth"
    torch.save(get_model(network, num_features=dim).state_dict(), path)
    return path


def test_missing_teacher_file_fails_before_training(tmp_path):
    job = write_job(tmp_path, REFORM_ONLY, "config.teacher = dict(network='r100', checkpoint='nowhere/backbone.pth')\n")
    with pytest.raises(CheckpointError,
                       match=r"teacher checkpoint 'nowhere/backbone.pth' \(stage 'reform'\) does not exist"):
        run_training(load_config(job), output=str(tmp_path / "run"))
    assert not list((tmp_path / "run").glob("*.pt"))
    job = write_job(tmp_path, REFORM_ONLY, "config.teacher = dict(network='r100')\n")
    with pytest.raises(ConfigError, match="no checkpoint; set config.teacher.checkpoint"):
        run_training(load_config(job), output=str(tmp_path / "run"))


def test_teacher_of_the_wrong_network(tmp_path):
    path = _teacher_file(tmp_path)
    job = write_job(tmp_path, REFORM_ONLY, f"config.teacher = dict(network='mbf', checkpoint={str(path)!r})\n")
    with pytest.raises(CheckpointError, match="does not match network 'mbf'"):
        run_training(load_config(job), output=str(tmp_path / "run"))


def test_teacher_embedding_size_must_match_for_first_order(tmp_path):
    path = _teacher_file(tmp_path, dim=16)
    job = write_job(tmp_path, REFORM_ONLY, f"config.teacher = dict(network='g2d_t', checkpoint={str(path)!r})\n")
    with pytest.raises(ConfigError, match="teacher embeddings have 16 dimensions but embedding_size is 32"):
        run_training(load_config(job), output=str(tmp_path / "run"))


def test_bad_dataset_and_class_count(tmp_path):
    job = write_job(tmp_path, REFORM_ONLY, rec=str(tmp_path / "no_such_dataset"))
    with pytest.raises(DataError, match="does not exist"):
        run_training(load_config(job), output=str(tmp_path / "run"))
    job = write_job(tmp_path, REFORM_ONLY, "config.num_classes = 5\n")
    with pytest.raises(ConfigError, match="num_classes = 5 but dataset .* has 4 identities"):
        run_training(load_config(job), output=str(tmp_path / "run"))


def test_stage_teacher_must_be_trained_first(tmp_path):
    stages = ('[dict(name="base", kind="arcface", network="g2d_t", steps=1), dict(name="reform", steps=1)]')
    job = write_job(tmp_path, stages)
    with pytest.raises(ConfigError, match="'base' has not been trained yet"):
        run_training(load_config(job), output=str(tmp_path / "run"), stage="reform")
    with pytest.raises(ConfigError, match="no such stage.*did you mean 'reform'"):
        run_training(load_config(job), output=str(tmp_path / "run"), stage="refrom")


def test_cli_turns_bad_input_into_one_line_and_exit_code_2(tmp_path, capsys):
    job = write_job(tmp_path, extra="config.weight_decy = 0.1\n")
    assert run_cli(main, [str(job), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown config key 'weight_decy'" in err and "did you mean 'weight_decay'" in err
    assert run_cli(main, [str(tmp_path / "missing.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ex:
        main(["--help"])
    assert ex.value.code == 0 and "example:" in capsys.readouterr().out
