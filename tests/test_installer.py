"""The arcface_torch installer against a small stand-in checkout made here (runs everywhere, CI too).

The stand-in has what the installer relies on (backbones/__init__.py with an if/elif get_model,
configs/base.py, train_v2.py); the real-checkout round trip is tests/test_arcface_integration.py.
"""
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from insightface_g2d.cli import arcface as cli
from insightface_g2d.cli.common import run_cli
from insightface_g2d.errors import G2DError
from insightface_g2d.integration import (
    MANIFEST_NAME, IntegrationError, find_blocks, install, plan_install, status, uninstall)
from insightface_g2d.integration import fileops
from insightface_g2d.version import __version__

GET_MODEL_SRC = '''"""Stand-in for arcface_torch's backbones package."""
from collections import namedtuple

Net = namedtuple("Net", "name kwargs")


def get_model(name, **kwargs):
    # plain networks
    if name == "r18":
        return Net("r18", kwargs)
    elif name == "mbf":
        return Net("mbf", kwargs)
    else:
        raise ValueError()
'''

BASE_CFG = '''from easydict import EasyDict as edict

config = edict()
config.network = "r50"
config.embedding_size = 512
config.fp16 = False
config.output = None
'''

RECIPE_BASE = '''from easydict import EasyDict as edict

config = edict()
config.network = "g2d"
config.embedding_size = 512
'''

RECIPE_DEMO = '''from easydict import EasyDict as edict

config = edict()
config.network = "g2d_t"
config.embedding_size = 64
config.num_classes = 10
'''


def tree_digest(root):
    """{relative path: sha256} of every file under root (what 'byte for byte' compares)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_checkout(root, get_model_src=GET_MODEL_SRC):
    (root / "backbones").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "backbones" / "__init__.py").write_text(get_model_src)
    (root / "configs" / "__init__.py").write_text("")
    (root / "configs" / "base.py").write_text(BASE_CFG)
    (root / "train_v2.py").write_text("# stand-in for arcface_torch's training script\n")
    return root


@pytest.fixture
def checkout(tmp_path):
    return make_checkout(tmp_path / "arcface_torch")


@pytest.fixture
def recipes(tmp_path):
    src = tmp_path / "recipes"
    src.mkdir()
    (src / "g2d_base.py").write_text(RECIPE_BASE)
    (src / "demo.py").write_text(RECIPE_DEMO)
    (src / "__init__.py").write_text("")  # not a config: never copied
    return src


def load_backbones(root, tag):
    """Import <root>/backbones as a fresh module (the way arcface_torch's scripts import it)."""
    spec = importlib.util.spec_from_file_location(f"_standin_backbones_{tag}", root / "backbones" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_routes_g2d_names_and_keeps_the_others(checkout, recipes):
    plan = install(checkout, configs_dir=recipes)
    assert sorted(c.rel for c in plan.changes) == sorted(
        ["backbones/__init__.py", "configs/g2d_base.py", "configs/g2d_demo.py", MANIFEST_NAME])
    backbones = load_backbones(checkout, "routes")
    net = backbones.get_model("g2d_t", dropout=0.0, fp16=False, num_features=16)
    assert type(net).__module__.startswith("insightface_g2d.")
    net.eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 112, 112)).shape == (2, 16)
    assert backbones.get_model("r18", fp16=True) == ("r18", {"fp16": True})
    with pytest.raises(ValueError):
        backbones.get_model("r999")
    # configs: copied byte for byte, ms1mv3-style names get the g2d prefix, __init__.py is skipped
    assert (checkout / "configs" / "g2d_demo.py").read_text() == RECIPE_DEMO
    assert (checkout / "configs" / "g2d_base.py").read_text() == RECIPE_BASE
    assert not (checkout / "configs" / "g2d___init__.py").exists()
    info = status(checkout)
    assert info["block_versions"] == [__version__] and info["up_to_date"]
    assert info["configs"] == [("configs/g2d_base.py", "unchanged"), ("configs/g2d_demo.py", "unchanged")]


def test_block_sits_at_the_top_of_get_model(checkout, recipes):
    install(checkout, configs_dir=recipes)
    lines = (checkout / "backbones" / "__init__.py").read_text().splitlines()
    at = lines.index("def get_model(name, **kwargs):")
    assert lines[at + 1] == f"    # >>> insightface_g2d {__version__} >>> G2D backbones; remove with `g2d-arcface uninstall`"
    assert lines[at + 2] == '    if isinstance(name, str) and name.startswith("g2d"):'
    assert lines[at + 5] == f"    # <<< insightface_g2d {__version__} <<<"
    assert lines[at + 6] == "    # plain networks"


def test_uninstall_restores_every_byte_and_install_is_idempotent(checkout, recipes):
    before = tree_digest(checkout)
    install(checkout, configs_dir=recipes)
    once = tree_digest(checkout)
    assert once != before
    again = install(checkout, configs_dir=recipes)
    assert not again.changed and tree_digest(checkout) == once
    plan = uninstall(checkout)
    assert sorted(c.kind for c in plan.changes) == ["delete", "delete", "delete", "modify"]
    assert tree_digest(checkout) == before
    assert not uninstall(checkout).changed  # a second uninstall has nothing to do


def test_dry_run_prints_the_diff_and_touches_nothing(checkout, recipes, capsys):
    before = tree_digest(checkout)
    mtimes = {p: p.stat().st_mtime_ns for p in checkout.rglob("*")}
    assert cli.main(["install", str(checkout), "--configs", str(recipes), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--- a/backbones/__init__.py\n+++ b/backbones/__init__.py\n" in out
    assert '+    if isinstance(name, str) and name.startswith("g2d"):\n' in out
    assert "--- /dev/null\n+++ b/configs/g2d_demo.py\n" in out
    assert "nothing was written" in out
    assert tree_digest(checkout) == before
    assert {p: p.stat().st_mtime_ns for p in checkout.rglob("*")} == mtimes
    install(checkout, configs_dir=recipes)
    installed = tree_digest(checkout)
    assert cli.main(["uninstall", str(checkout), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--- a/configs/g2d_demo.py\n+++ /dev/null\n" in out
    assert '-    if isinstance(name, str) and name.startswith("g2d"):\n' in out
    assert tree_digest(checkout) == installed


def test_dry_run_diff_applies_with_patch_to_reproduce_the_install(checkout, recipes, tmp_path):
    """The printed diff is a real unified diff: `patch -p1` turns a copy into the installed tree."""
    patch_bin = __import__("shutil").which("patch")
    if patch_bin is None:
        pytest.skip("the `patch` program is not installed")
    import subprocess
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(checkout, copy)
    diff = plan_install(checkout, configs_dir=recipes).diff()
    subprocess.run([patch_bin, "-p1", "-s"], input=diff.encode(), cwd=copy, check=True)
    install(checkout, configs_dir=recipes)
    assert tree_digest(copy) == tree_digest(checkout)


@pytest.mark.parametrize("layout", ["empty", "no_get_model", "no_base", "no_train"])
def test_refuses_a_folder_that_is_not_an_arcface_torch_checkout(tmp_path, recipes, layout, capsys):
    root = tmp_path / "x"
    root.mkdir()
    if layout != "empty":
        make_checkout(root, get_model_src="def build(name):\n    return name\n" if layout == "no_get_model" else GET_MODEL_SRC)
        if layout == "no_base":
            (root / "configs" / "base.py").unlink()
        if layout == "no_train":
            (root / "train_v2.py").unlink()
    before = tree_digest(root)
    with pytest.raises(IntegrationError) as err:
        install(root, configs_dir=recipes)
    msg = str(err.value)
    assert "is not an arcface_torch checkout" in msg
    assert "backbones/__init__.py, configs/base.py, train_v2.py" in msg
    assert tree_digest(root) == before
    # through the command line: one line on stderr, exit code 2
    assert run_cli(cli.main, ["install", str(root), "--configs", str(recipes)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1


def test_points_to_arcface_torch_inside_an_insightface_repository(tmp_path, recipes):
    make_checkout(tmp_path / "insightface" / "recognition" / "arcface_torch")
    with pytest.raises(IntegrationError, match="did you mean .*recognition/arcface_torch"):
        install(tmp_path / "insightface", configs_dir=recipes)


def test_an_older_version_block_is_replaced_cleanly(checkout, recipes):
    before = tree_digest(checkout)
    install(checkout, configs_dir=recipes, version="0.0.9")
    text = (checkout / "backbones" / "__init__.py").read_text()
    assert "# >>> insightface_g2d 0.0.9 >>>" in text
    assert status(checkout)["up_to_date"] is False
    plan = install(checkout, configs_dir=recipes)
    assert any("replacing the insightface_g2d 0.0.9 block" in n for n in plan.notes)
    text = (checkout / "backbones" / "__init__.py").read_text()
    assert "0.0.9" not in text and len(find_blocks(text)) == 1
    assert find_blocks(text)[0].version == __version__
    uninstall(checkout)
    assert tree_digest(checkout) == before


def test_a_hand_written_old_block_without_manifest_is_replaced(checkout, recipes):
    """An older block (other body, no manifest, e.g. from an old g2d.patch) is found by its markers."""
    path = checkout / "backbones" / "__init__.py"
    original = path.read_text()
    old_block = ("    # >>> insightface_g2d 0.0.1 >>> old\n"
                 "    if name in ('g2d',):\n"
                 "        import insightface_g2d\n"
                 "        return insightface_g2d.get_model(name, **kwargs)\n"
                 "    # <<< insightface_g2d 0.0.1 <<<\n")
    path.write_text(original.replace("    # plain networks\n", old_block + "    # plain networks\n"))
    install(checkout, configs_dir=recipes)
    text = path.read_text()
    assert "0.0.1" not in text and [b.version for b in find_blocks(text)] == [__version__]
    uninstall(checkout)
    assert path.read_text() == original


def test_unbalanced_markers_are_refused_without_change(checkout, recipes):
    path = checkout / "backbones" / "__init__.py"
    path.write_text(path.read_text().replace("    # plain networks\n", "    # >>> insightface_g2d 0.0.1 >>>\n"))
    before = tree_digest(checkout)
    with pytest.raises(IntegrationError, match="unbalanced"):
        install(checkout, configs_dir=recipes)
    assert tree_digest(checkout) == before


def test_read_only_checkout_is_refused_before_anything_is_written(checkout, recipes, tmp_path):
    """A really read-only checkout: file modes for a normal user; for root (whom modes do not stop)
    a read-only bind mount in a private mount namespace, skipped where that is not permitted."""
    before = tree_digest(checkout)
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        for p in [checkout / "configs", checkout / "backbones" / "__init__.py", checkout]:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            with pytest.raises(IntegrationError, match="Nothing was changed"):
                install(checkout, configs_dir=recipes)
        finally:
            for p in [checkout, checkout / "configs", checkout / "backbones" / "__init__.py"]:
                p.chmod(p.stat().st_mode | 0o200)
        assert tree_digest(checkout) == before
        return
    import shlex
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        pytest.skip("running as root without `unshare`: cannot make a read-only checkout")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    cmd = (f"mount --bind {shlex.quote(str(checkout))} {shlex.quote(str(mnt))} && "
           f"mount -o remount,bind,ro {shlex.quote(str(mnt))} || exit 77; "
           f"{shlex.quote(sys.executable)} -m insightface_g2d.cli.arcface install {shlex.quote(str(mnt))} "
           f"--configs {shlex.quote(str(recipes))}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    if proc.returncode == 77 or "unshare failed" in proc.stderr:
        pytest.skip(f"running as root and no read-only bind mount is permitted here: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot change the arcface_torch checkout")
    assert "backbones/__init__.py is read-only" in proc.stderr and "Nothing was changed" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert tree_digest(checkout) == before


def test_unwritable_target_found_by_the_pre_write_check(checkout, recipes, monkeypatch, capsys):
    """Every target is checked before the first write: one unwritable folder stops everything."""
    before = tree_digest(checkout)
    real_access = os.access
    configs_dir = os.fspath(checkout / "configs")
    monkeypatch.setattr(fileops.os, "access",
                        lambda p, mode: False if os.fspath(p) == configs_dir else real_access(p, mode))
    with pytest.raises(IntegrationError) as err:
        install(checkout, configs_dir=recipes)
    assert "configs/g2d_demo.py: folder" in str(err.value) and "is not writable" in str(err.value)
    assert tree_digest(checkout) == before
    assert run_cli(cli.main, ["install", str(checkout), "--configs", str(recipes)]) == 2
    assert "Nothing was changed" in capsys.readouterr().err


def test_a_folder_where_a_config_goes_is_refused(checkout, recipes):
    (checkout / "configs" / "g2d_demo.py").mkdir()
    before = tree_digest(checkout)
    with pytest.raises(IntegrationError, match="is not a regular file"):
        install(checkout, configs_dir=recipes)
    assert tree_digest(checkout) == before


def test_a_failed_write_rolls_everything_back(checkout, recipes):
    before = tree_digest(checkout)
    calls = []

    def flaky_write(path, data):  # the third write fails; the roll-back's writes work
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        fileops.atomic_write(path, data)

    plan = plan_install(checkout, configs_dir=recipes)
    with pytest.raises(IntegrationError, match="every change was rolled back"):
        plan.apply(write=flaky_write)
    assert len(calls) > 3  # the roll-back rewrote what was already changed
    assert tree_digest(checkout) == before
    assert not [p for p in checkout.rglob("*") if p.name.endswith(".g2d-tmp")]


def test_uninstall_refuses_to_delete_an_edited_config(checkout, recipes):
    install(checkout, configs_dir=recipes)
    edited = checkout / "configs" / "g2d_demo.py"
    edited.write_text(RECIPE_DEMO + "config.lr = 0.01\n")
    before = tree_digest(checkout)
    with pytest.raises(IntegrationError, match="g2d_demo.py in .* changed since install"):
        uninstall(checkout)
    assert tree_digest(checkout) == before
    plan = uninstall(checkout, keep_modified=True)
    assert any("left in place" in n for n in plan.notes)
    assert edited.read_text().endswith("config.lr = 0.01\n")
    assert not (checkout / "configs" / "g2d_base.py").exists()
    assert not (checkout / MANIFEST_NAME).exists()
    assert "insightface_g2d" not in (checkout / "backbones" / "__init__.py").read_text()


def test_install_never_overwrites_a_config_it_did_not_install(checkout, recipes):
    (checkout / "configs" / "g2d_demo.py").write_text("config = 'someone else's'\n")
    before = tree_digest(checkout)
    with pytest.raises(IntegrationError, match="was not installed by g2d-arcface"):
        install(checkout, configs_dir=recipes)
    assert tree_digest(checkout) == before


def test_reinstall_refuses_to_overwrite_an_edited_installed_config(checkout, recipes):
    install(checkout, configs_dir=recipes)
    (checkout / "configs" / "g2d_demo.py").write_text(RECIPE_DEMO + "# mine\n")
    (recipes / "demo.py").write_text(RECIPE_DEMO + "config.num_epoch = 2\n")
    before = tree_digest(checkout)
    with pytest.raises(IntegrationError, match="edited after g2d-arcface installed it"):
        install(checkout, configs_dir=recipes)
    assert tree_digest(checkout) == before


def test_upgrade_updates_and_removes_configs_recorded_by_the_earlier_install(checkout, recipes):
    before = tree_digest(checkout)
    install(checkout, configs_dir=recipes)
    (recipes / "demo.py").write_text(RECIPE_DEMO + "config.num_epoch = 2\n")
    (recipes / "g2d_base.py").unlink()
    plan = install(checkout, configs_dir=recipes)
    assert {c.rel: c.kind for c in plan.changes} == {
        "configs/g2d_demo.py": "modify", "configs/g2d_base.py": "delete", MANIFEST_NAME: "modify"}
    assert (checkout / "configs" / "g2d_demo.py").read_text().endswith("config.num_epoch = 2\n")
    uninstall(checkout)
    assert tree_digest(checkout) == before


def test_edits_elsewhere_in_backbones_survive_uninstall(checkout, recipes):
    install(checkout, configs_dir=recipes)
    path = checkout / "backbones" / "__init__.py"
    path.write_text(path.read_text() + "\n\nEXTRA = 1\n")
    plan = uninstall(checkout)
    assert any("edited after install" in n for n in plan.notes)
    assert path.read_text() == GET_MODEL_SRC + "\n\nEXTRA = 1\n"


def test_a_corrupt_or_foreign_manifest_is_refused(checkout, recipes):
    install(checkout, configs_dir=recipes)
    manifest = checkout / MANIFEST_NAME
    good = manifest.read_text()
    manifest.write_text(good.replace('"configs/g2d_demo.py"', '"../../outside.py"'))
    with pytest.raises(IntegrationError, match="malformed config entry"):
        uninstall(checkout)
    manifest.write_text("{not json")
    with pytest.raises(IntegrationError, match="not JSON"):
        status(checkout)


def test_manifest_records_original_and_copied_hashes(checkout, recipes):
    import json

    original = (checkout / "backbones" / "__init__.py").read_bytes()
    install(checkout, configs_dir=recipes)
    doc = json.loads((checkout / MANIFEST_NAME).read_text())
    assert doc["version"] == __version__
    assert doc["get_model"]["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert doc["get_model"]["installed_sha256"] == hashlib.sha256(
        (checkout / "backbones" / "__init__.py").read_bytes()).hexdigest()
    assert doc["configs"]["configs/g2d_demo.py"] == {
        "source": "demo.py", "sha256": hashlib.sha256(RECIPE_DEMO.encode()).hexdigest()}


def test_bad_recipe_configs_are_refused(checkout, tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    with pytest.raises(IntegrationError, match="holds no config"):
        install(checkout, configs_dir=src)
    (src / "x.py").write_text("network = 'g2d'\n")
    with pytest.raises(IntegrationError, match="must define 'config = edict\\(\\)'"):
        install(checkout, configs_dir=src)
    with pytest.raises(IntegrationError, match="does not exist"):
        install(checkout, configs_dir=tmp_path / "missing")
    assert issubclass(IntegrationError, G2DError)


def test_status_and_help_from_the_command_line(checkout, recipes, capsys):
    assert cli.main(["status", str(checkout)]) == 0
    assert "no G2D block (not installed)" in capsys.readouterr().out
    assert cli.main(["install", str(checkout), "--configs", str(recipes)]) == 0
    out = capsys.readouterr().out
    assert f"installed insightface_g2d {__version__}" in out and "add    configs/g2d_demo.py" in out
    assert cli.main(["status", str(checkout)]) == 0
    out = capsys.readouterr().out
    assert f"G2D block of insightface_g2d {__version__} (up to date)" in out
    assert "config: configs/g2d_demo.py (unchanged)" in out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_default_configs_come_from_the_repository_recipes(checkout):
    from insightface_g2d.integration.configs import candidate_dirs, default_configs_dir

    repo_configs = Path(__file__).resolve().parents[1] / "recipes" / "configs"
    assert repo_configs in candidate_dirs()
    if not any(p for p in repo_configs.glob("*.py") if not p.name.startswith("_")):
        with pytest.raises(IntegrationError, match="pass --configs"):
            default_configs_dir()
        return
    plan = install(checkout)
    names = {c.rel for c in plan.changes if c.rel.startswith("configs/")}
    assert names and all(Path(n).name.startswith("g2d") for n in names)
    assert not any(n == "configs/base.py" for n in names)


def test_running_python_executable_is_named(checkout, recipes, capsys):
    cli.main(["install", str(checkout), "--configs", str(recipes)])
    assert sys.executable in capsys.readouterr().out


def test_a_failed_roll_back_says_which_files_to_restore(checkout, recipes):
    calls = []

    def broken_disk(path, data):  # every write from the third on fails, the roll-back's too
        calls.append(path)
        if len(calls) >= 3:
            raise OSError(5, "Input/output error")
        fileops.atomic_write(path, data)

    with pytest.raises(IntegrationError, match=r"rolling back also failed for .*backbones/__init__\.py"):
        plan_install(checkout, configs_dir=recipes).apply(write=broken_disk)


def test_an_unreadable_file_is_one_clear_error(checkout, recipes, monkeypatch):
    target = checkout / "configs" / "base.py"
    install(checkout, configs_dir=recipes)
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "g2d_demo.py" and self.parent.name == "configs":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(IntegrationError, match=r"cannot read .*g2d_demo\.py: Permission denied; nothing was changed"):
        uninstall(checkout)
    assert target.is_file()
