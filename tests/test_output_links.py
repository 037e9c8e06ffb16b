"""Symbolic links planted in output folders: no tool writes through one. A link where a tool writes
a file, or where it makes a folder of its own inside the folder the user named, is replaced by
that file or folder; what the link points to is never touched (fileio)."""
import os

import pytest

from insightface_g2d import fileio
from insightface_g2d.cli.common import run_cli
from insightface_g2d.training.checkpoint import remove_stale_temps
from insightface_g2d.training.config import load_config
from insightface_g2d.training.lock import LOCK_NAME
from insightface_g2d.training.runner import run_training

from output_tools import TOOLS, make_inputs, tool_run
from training_tools import write_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KEEP = "keep me"


def _victim_file(folder, name):
    path = folder / f"victim_{name.replace('/', '_')}"
    path.write_text(KEEP)
    return path


def _victim_folder(folder, name, inside=()):
    """A folder holding files named as those a tool writes into the folder `name` (to see them replaced)."""
    path = folder / f"victim_{name}"
    path.mkdir()
    for child in inside:
        (path / child).write_text(KEEP)
    return path


def _untouched(victims):
    """Names of victims whose content or listing changed."""
    changed = []
    for victim, listing in victims.items():
        if victim.is_dir():
            if sorted(os.listdir(victim)) != listing or any((victim / n).read_text() != KEEP for n in listing):
                changed.append(victim.name)
        elif victim.read_text() != KEEP:
            changed.append(victim.name)
    return changed


def test_fileio_replaces_links_and_follows_the_users_folder(tmp_path):
    victims = tmp_path / "victims"
    victims.mkdir()
    real = tmp_path / "real_out"
    real.mkdir()
    out = tmp_path / "out"
    os.symlink(real, out)  # the folder the user named may be a link: followed
    os.symlink(_victim_file(victims, "a"), real / "a.txt")
    os.symlink(_victim_folder(victims, "sub", ["b.txt"]), real / "sub")
    os.symlink(_victim_file(victims, "log"), real / "log.txt")
    os.symlink(victims / "missing", real / "dangling.txt")
    with fileio.atomic_open(out / "a.txt", "w") as f:
        f.write("new a")
    with fileio.atomic_open(out / "sub" / "b.txt", "w", within=out) as f:
        f.write("new b")
    with fileio.atomic_open(out / "dangling.txt", "w") as f:
        f.write("new c")
    fd = fileio.open_file(out / "log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"appended")
    os.close(fd)
    os.symlink(victims / "victim_a", real / "read.txt")
    with pytest.raises(OSError):  # without O_CREAT nothing replaces a link: refused, not followed
        fileio.open_file(out / "read.txt", os.O_RDONLY)
    assert sorted(os.listdir(victims)) == ["victim_a", "victim_log", "victim_sub"]
    assert _untouched({victims / "victim_a": None, victims / "victim_log": None,
                       victims / "victim_sub": ["b.txt"]}) == []
    for name, text in (("a.txt", "new a"), ("sub/b.txt", "new b"), ("dangling.txt", "new c"), ("log.txt", "appended")):
        assert not os.path.islink(real / name) and (real / name).read_text() == text
    assert not os.path.islink(real / "sub") and os.path.islink(out)


def test_stale_temporaries_are_not_removed_through_a_linked_folder(tmp_path):
    victim = _victim_folder(tmp_path, "previews", [".step1.png.abcd1234.tmp"])
    os.symlink(victim, tmp_path / "previews")
    assert remove_stale_temps(tmp_path / "previews", lambda target: True) == []
    assert os.listdir(victim) == [".step1.png.abcd1234.tmp"]


def test_g2d_train_writes_no_output_through_a_link(tmp_path):
    """Links at every name a run writes (files, the previews folder, the lock file), evaluation on."""
    job = write_job(tmp_path, """[
        dict(name="base", kind="arcface", network="g2d_t", steps=1, optimizer="adamw", lr=1e-3, scale=16.0),
        dict(name="inpaint", steps=1, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    ]""", 'config.eval = dict(enabled=True, pairs="synthetic:ids=8,per_id=4,seed=3,offset=1000", num_pairs=40, '
          'batch_size=16)\n')
    out = tmp_path / "run"
    out.mkdir()
    victims = tmp_path / "victims"
    victims.mkdir()
    planted = {}
    for name in ("eval_roc.png", "eval.json", "eval.md", "model.pt", "config.json", "run_summary.json",
                 "training.log", "scalars.csv", LOCK_NAME, "model.thresholds.json"):
        planted[_victim_file(victims, name)] = None
        os.symlink(victims / f"victim_{name}", out / name)
    inside = ["inpaint_final.png", ".inpaint_final.png.abcd1234.tmp"]  # a preview, a stale-looking temporary
    planted[_victim_folder(victims, "previews", inside)] = sorted(inside)
    os.symlink(victims / "victim_previews", out / "previews")

    summary = run_training(load_config(job), output=str(out))
    assert summary["status"] == "finished" and "eval" in summary
    assert _untouched(planted) == []
    for name in ("eval_roc.png", "eval.json", "model.pt", "training.log", "scalars.csv", LOCK_NAME, "previews",
                 "model.thresholds.json"):
        assert not os.path.islink(out / name) and os.path.exists(out / name), name
    assert (out / "previews" / "inpaint_final.png").stat().st_size > 1000
    assert (out / "eval_roc.png").read_bytes()[:4] == b"\x89PNG"
    assert "stage inpaint finished" in (out / "training.log").read_text()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def written(inputs, tmp_path_factory):
    """{tool: (files, folders)}: the names each tool writes at the top of its output folder."""
    names = {}
    for tool in TOOLS:
        out = tmp_path_factory.mktemp(tool)
        main, argv = tool_run(tool, inputs, out)
        assert run_cli(main, argv) == 0, tool
        entries = sorted(os.listdir(out))
        names[tool] = ([n for n in entries if (out / n).is_file()], [n for n in entries if (out / n).is_dir()])
    return names


@pytest.mark.parametrize("tool", TOOLS)
def test_no_tool_writes_through_a_link(tool, inputs, written, tmp_path, capsys):
    """A link at each file the tool writes, and at each folder it makes (and at a cache's DIR.partial)."""
    files, folders = written[tool]
    if tool.startswith("cache-"):
        folders = folders + ["cache.partial"]
    out = tmp_path / "out"
    out.mkdir()
    victims = tmp_path / "victims"
    victims.mkdir()
    planted = {}
    for name in files:
        planted[_victim_file(victims, name)] = None
        os.symlink(victims / f"victim_{name}", out / name)
    for name in folders:  # anything written into the folder shows as a new name in it
        planted[_victim_folder(victims, name, ["unrelated.txt"])] = ["unrelated.txt"]
        os.symlink(victims / f"victim_{name}", out / name)
    main, argv = tool_run(tool, inputs, out)
    if tool in ("data-pack", "recordio-index"):
        argv.append("--force")  # the planted link counts as an existing output
    if tool.startswith("cache-"):
        argv.append("--overwrite")
    assert run_cli(main, argv) == 0, capsys.readouterr().err[-3000:]
    assert _untouched(planted) == []
    for name in [*files, *written[tool][1]]:
        assert os.path.exists(out / name) and not os.path.islink(out / name), name
