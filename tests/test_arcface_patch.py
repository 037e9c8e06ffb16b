"""recipes/arcface_torch/g2d.patch, the one way G2D goes into arcface_torch (runs everywhere: no
checkout needed; tests/test_arcface_integration.py applies it to a real one when
ARCFACE_TORCH_ROOT is set).

The patch adds the recipe configs byte for byte and a get_model block that builds G2D networks;
recipes/arcface_torch/make_patch.py writes it and gives the same text for the same inputs.
"""
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import insightface_g2d

REPO = Path(__file__).resolve().parents[1]
PATCH = REPO / "recipes" / "arcface_torch" / "g2d.patch"
CONFIGS = REPO / "recipes" / "configs"
PREFIX = "recognition/arcface_torch/"

# A small stand-in for arcface_torch's backbones/__init__.py. Only the lines the patch's hunk uses
# as context (the blank lines after the imports down to the first return of get_model) follow the
# real file; the rest is written here: a table for two resnet depths, mbf, else ValueError.
STAND_IN_INIT = '''\
from .iresnet import iresnet18, iresnet50
from .mobilefacenet import get_mbf


def get_model(name, **kwargs):
    # resnet
    if name == "r18":
        return iresnet18(False, **kwargs)
    table = {"r50": iresnet50}
    if name in table:
        return table[name](False, **kwargs)
    if name == "mbf":
        return get_mbf(kwargs.get("fp16", False), kwargs.get("num_features", 512))
    raise ValueError(name)
'''
STAND_IN_IRESNET = "".join(f"def iresnet{depth}(pretrained, **kwargs):\n    return ('iresnet{depth}', kwargs)\n\n\n"
                           for depth in (18, 50))
STAND_IN_MBF = "def get_mbf(fp16, num_features):\n    return ('mbf', num_features)\n"


def read_patch(text):
    """{path without a/ b/: (is a new file, [hunks])}; a hunk is (old start, [(' ' | '+' | '-', line)])."""
    files, hunk = {}, None
    current = None
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git "):
            current = re.match(r"diff --git a/(\S+) b/", line).group(1)
            files[current] = [False, []]
            hunk = None
        elif current is None:
            continue  # the header above the first diff
        elif line.startswith("new file mode"):
            files[current][0] = True
        elif line.startswith("@@ "):
            old_start = int(re.match(r"@@ -(\d+)", line).group(1))
            hunk = (old_start, [])
            files[current][1].append(hunk)
        elif hunk is not None and line[:1] in (" ", "+", "-"):
            hunk[1].append((line[0], line[1:]))
        elif line.startswith("\\ No newline at end of file"):
            kind, last = hunk[1][-1]
            hunk[1][-1] = (kind, last.rstrip("\n"))
    return {path: (new, hunks) for path, (new, hunks) in files.items()}


def apply_hunks(source, hunks):
    """``source`` with the hunks applied exactly (context and removed lines must match)."""
    lines = source.splitlines(keepends=True)
    out, pos = [], 0
    for old_start, body in hunks:
        start = max(old_start - 1, 0)
        out += lines[pos:start]
        pos = start
        for kind, text in body:
            if kind in (" ", "-"):
                assert lines[pos] == text, f"line {pos + 1}: patch expects {text!r}, file has {lines[pos]!r}"
                pos += 1
            if kind in (" ", "+"):
                out.append(text)
    return "".join(out + lines[pos:])


def added_file(hunks):
    return "".join(text for _, body in hunks for kind, text in body if kind == "+")


@pytest.fixture(scope="module")
def patch():
    assert PATCH.is_file(), f"{PATCH} is missing: python recipes/arcface_torch/make_patch.py PATH/TO/arcface_torch"
    return read_patch(PATCH.read_text(encoding="utf-8"))


def _make_patch_module():
    spec = importlib.util.spec_from_file_location("make_patch", REPO / "recipes" / "arcface_torch" / "make_patch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_patch_adds_every_recipe_config_byte_for_byte(patch):
    recipes = sorted(p for p in CONFIGS.glob("*.py") if not p.name.startswith("_"))
    assert recipes
    expected = {PREFIX + "configs/" + (p.name if p.name.startswith("g2d") else f"g2d_{p.name}"): p for p in recipes}
    added = {path for path, (new, _) in patch.items() if new}
    assert added == set(expected), "g2d.patch is out of date: rerun recipes/arcface_torch/make_patch.py"
    for path, src in expected.items():
        assert added_file(patch[path][1]).encode("utf-8") == src.read_bytes(), \
            f"{path} differs from {src.relative_to(REPO)}: rerun recipes/arcface_torch/make_patch.py"
    # nothing else: the configs and the get_model block
    assert set(patch) == set(expected) | {PREFIX + "backbones/__init__.py"}


@pytest.fixture()
def patched_backbones(patch, tmp_path, monkeypatch):
    """The stand-in backbones package with the patch's get_model hunk applied, imported."""
    package = tmp_path / "backbones"
    package.mkdir()
    new, hunks = patch[PREFIX + "backbones/__init__.py"]
    assert not new and len(hunks) == 1
    (package / "__init__.py").write_text(apply_hunks(STAND_IN_INIT, hunks))
    (package / "iresnet.py").write_text(STAND_IN_IRESNET)
    (package / "mobilefacenet.py").write_text(STAND_IN_MBF)
    spec = importlib.util.spec_from_file_location("arcface_backbones", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "arcface_backbones", module)
    spec.loader.exec_module(module)
    return module


def test_get_model_hunk_builds_g2d_networks_and_keeps_the_others(patched_backbones):
    get_model = patched_backbones.get_model
    for name in ("g2d_t", "g2d", "g2d_r18", "dlib_resnet"):
        # what train_v2.py asks for
        net = get_model(name, dropout=0.0, fp16=False, num_features=128)
        ours = insightface_g2d.get_model(name, dropout=0.0, fp16=False, num_features=128)
        assert type(net) is type(ours) and type(net).__module__.startswith("insightface_g2d.backbones")
        assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ours.parameters())
    net = get_model("g2d_t", dropout=0.0, fp16=False, num_features=128).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 112, 112)).shape == (2, 128)
    assert get_model("r50", dropout=0.0) == ("iresnet50", {"dropout": 0.0})
    assert get_model("mbf", num_features=256) == ("mbf", 256)
    with pytest.raises(ValueError):
        get_model("not_a_network")


def test_generator_block_goes_at_the_top_of_get_model():
    make_patch = _make_patch_module()
    text = make_patch.add_get_model_block(STAND_IN_INIT, "9.9.9")
    lines = text.splitlines()
    at = lines.index("def get_model(name, **kwargs):")
    assert lines[at + 1] == ("    # >>> insightface_g2d 9.9.9 >>> G2D backbones and dlib's ResNet from the "
                             "insightface_g2d package")
    assert lines[at + 5] == "    # <<< insightface_g2d 9.9.9 <<<" and lines[at + 6] == "    # resnet"
    assert text.replace("".join(make_patch.get_model_block("9.9.9", "    ")), "") == STAND_IN_INIT
    # after a docstring; other argument names are kept
    other = "def get_model(arch, **kw):\n    \"\"\"Doc.\"\"\"\n    return arch\n"
    assert make_patch.add_get_model_block(other, "1").splitlines()[2:4] == [
        "    # >>> insightface_g2d 1 >>> G2D backbones and dlib's ResNet from the insightface_g2d package",
        '    if isinstance(arch, str) and arch.startswith(("g2d", "dlib_resnet")):']
    with pytest.raises(SystemExit, match="already has a G2D block"):
        make_patch.add_get_model_block(text, "9.9.9")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_generator_output_applies_with_git_to_the_tree_it_was_made_from(tmp_path):
    """make_patch.py on a stand-in checkout: a patch `git apply` takes at an insightface root,
    giving the block and the configs; the same inputs give the same text."""
    make_patch = _make_patch_module()
    checkout = tmp_path / "given" / "arcface_torch"
    (checkout / "backbones").mkdir(parents=True)
    (checkout / "configs").mkdir()
    (checkout / "backbones" / "__init__.py").write_text(STAND_IN_INIT)
    (checkout / "configs" / "base.py").write_text("from easydict import EasyDict as edict\n\nconfig = edict()\n")
    text = make_patch.make_patch(checkout, CONFIGS, version="0.0.0-test")
    assert text == make_patch.make_patch(checkout, CONFIGS, version="0.0.0-test")
    assert text.startswith("G2D backbones and recipe configs for arcface_torch (insightface_g2d 0.0.0-test).")
    patch_file = tmp_path / "g2d.patch"
    patch_file.write_text(text)
    root = tmp_path / "insightface"
    shutil.copytree(checkout, root / "recognition" / "arcface_torch")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "apply", str(patch_file)], cwd=root, check=True)
    applied = root / "recognition" / "arcface_torch"
    assert (applied / "backbones" / "__init__.py").read_text() == make_patch.add_get_model_block(
        STAND_IN_INIT, "0.0.0-test")
    for src in CONFIGS.glob("*.py"):
        assert (applied / "configs" / make_patch.config_name(src.name)).read_bytes() == src.read_bytes()
    assert (checkout / "backbones" / "__init__.py").read_text() == STAND_IN_INIT  # the input is left alone
    # the committed patch was made the same way: same get_model hunk lines, same configs
    committed = read_patch(PATCH.read_text(encoding="utf-8"))
    made = read_patch(text.replace("0.0.0-test", insightface_g2d.__version__))
    assert made.keys() == committed.keys()
    for path in made:
        assert [b for _, b in made[path][1]] == [b for _, b in committed[path][1]], path


def test_generator_help_names_the_one_command(capsys):
    with pytest.raises(SystemExit) as ex:
        _make_patch_module().main(["--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert "python recipes/arcface_torch/make_patch.py" in out and "--check" in out
