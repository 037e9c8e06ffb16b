"""Contract of the mask-style registry: every registered style passes the same checks, and a new
style is one module plus one registry line (the recipe of docs/architecture.md, run from that page)."""
import importlib.util
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from insightface_g2d.cli.common import run_cli
from insightface_g2d.masks import synthesizer as masks_mod
from insightface_g2d.masks.styles import MASK_POSITIONS, MASK_STYLES, MaskStyle, mask_style
from insightface_g2d.errors import ConfigError
from mask_style_contract import check_layers, check_on_faces, smooth_faces

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.mark.parametrize("name", tuple(MASK_STYLES))
def test_registered_style_layers(name):
    check_layers(name)


@pytest.mark.parametrize("name", tuple(MASK_STYLES))
def test_registered_style_on_faces(name):
    check_on_faces(name)


def test_registry_names_and_lookup():
    assert all(MASK_STYLES[name].name == name for name in MASK_STYLES)
    assert mask_style("kn95") is MASK_STYLES["kn95"]
    with pytest.raises(ConfigError, match=r"unknown mask style 'kn59'.*did you mean 'kn95'"):
        mask_style("kn59")


@pytest.mark.parametrize("bad, match", [
    (dict(name="Bad+Name"), "lower-case"),
    (dict(kind="glitter"), "kind 'glitter'"),
    (dict(palette=()), "palette"),
    (dict(palette=((0, 0, 300),)), "palette"),
    (dict(render="not a function"), "render must be a function"),
])
def test_mask_style_definition_is_checked(bad, match):
    fields = dict(name="ok", render=lambda grid, k, rng, position: None, palette=((1, 2, 3),), kind="plain")
    fields.update(bad)
    with pytest.raises(ConfigError, match=match):
        MaskStyle(**fields)


# ------------------------------------------------------------------------------------------------
# adding a style the documented way

def _recipe_module_text():
    """The style module of the "Add a mask style" recipe in docs/architecture.md, and its file name."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Add a mask style", 1)[1].split("\n### ", 1)[0]
    path = re.search(r"`insightface_g2d/masks/styles/(\w+)\.py`", section).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return path, code


@pytest.fixture()
def documented_style(tmp_path, monkeypatch):
    """The recipe's module imported as a module of the mask_styles package, plus its registry
    line (monkeypatched, so the registry is restored afterwards). Nothing else is edited."""
    module_name, code = _recipe_module_text()
    path = tmp_path / f"{module_name}.py"
    path.write_text(code, encoding="utf-8")
    qualified = f"insightface_g2d.masks.styles.{module_name}"
    spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, qualified, module)
    spec.loader.exec_module(module)
    monkeypatch.setitem(MASK_STYLES, module.STYLE.name, module.STYLE)  # the one registry line
    yield module.STYLE
    for key in [k for k in masks_mod._GROUPS if k[0] is module.STYLE]:
        del masks_mod._GROUPS[key]  # leave no bank of the temporary style in the process cache


def test_documented_new_style_passes_the_contract(documented_style):
    name = documented_style.name
    assert name not in ("surgical", "n95", "kn95", "cloth", "patterned", "textured")
    assert list(MASK_STYLES)[-1] == name
    check_layers(name)
    check_on_faces(name)


def test_documented_new_style_leaves_existing_masks_unchanged(documented_style):
    """Appending a style does not move the others' template banks: same bytes with and without it."""
    imgs = smooth_faces(12, seed=2)
    existing = [s for s in MASK_STYLES if s != documented_style.name]
    masks_mod._GROUPS.clear()  # build both banks here, not from the process cache
    out_a = masks_mod.MaskSynthesizer(styles=existing, templates_per_group=8, bank_seed=77).apply_batch(
        imgs, np.random.default_rng(1))[0]
    masks_mod._GROUPS.clear()
    del MASK_STYLES[documented_style.name]
    try:
        out_b = masks_mod.MaskSynthesizer(styles=existing, templates_per_group=8, bank_seed=77).apply_batch(
            imgs, np.random.default_rng(1))[0]
    finally:
        MASK_STYLES[documented_style.name] = documented_style
    assert np.array_equal(out_a, out_b)
    # The contrast: banks are seeded by registry position, so inserting the style before an
    # existing one moves that style's masks (hence the docs' "append only").
    order = dict(MASK_STYLES)
    masks_mod._GROUPS.clear()
    MASK_STYLES.clear()
    MASK_STYLES.update({documented_style.name: documented_style},
                       **{k: v for k, v in order.items() if k != documented_style.name})
    try:
        out_c = masks_mod.MaskSynthesizer(styles=existing, templates_per_group=8, bank_seed=77).apply_batch(
            imgs, np.random.default_rng(1))[0]
    finally:
        MASK_STYLES.clear()
        MASK_STYLES.update(order)
        masks_mod._GROUPS.clear()
    assert list(MASK_STYLES) == list(order)
    assert not np.array_equal(out_a, out_c)


def test_documented_new_style_in_g2d_mask(documented_style, tmp_path):
    from insightface_g2d.cli.mask import main

    name = documented_style.name
    out = tmp_path / "grid.png"
    assert run_cli(main, ["preview", "--synthetic", "--faces", "3", "--styles", name, "--out", str(out),
                          "--no-labels"]) == 0
    grid = cv2.imread(str(out))
    assert grid.shape == ((1 + len(MASK_POSITIONS)) * 112, 3 * 112, 3)  # clean row + one per position
    src = tmp_path / "faces"
    src.mkdir()
    for i, face in enumerate(smooth_faces(3, seed=9)):
        cv2.imwrite(str(src / f"{i}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    assert run_cli(main, ["apply", "--input", str(src), "--aligned", "--styles", name, "--out",
                          str(tmp_path / "masked"), "--quiet"]) == 0
    for i in range(3):
        before, after = cv2.imread(str(src / f"{i}.png")), cv2.imread(str(tmp_path / "masked" / f"{i}.png"))
        assert np.array_equal(before[:55], after[:55]) and not np.array_equal(before[80:], after[80:])


def test_documented_new_style_in_evaluation_protocols(documented_style):
    from insightface_g2d.evaluation.protocols import apply_protocol, parse_protocol

    name = documented_style.name
    assert parse_protocol(f"style:{name}") == ("masked-masked", name)
    assert parse_protocol(f"masked-clean:{name}") == ("masked-clean", name)
    assert parse_protocol(f"masked-masked:n95+{name}") == ("masked-masked", ("n95", name))
    faces = smooth_faces(8, seed=3)
    out = apply_protocol(faces, np.array([True, False, True, False]), f"masked-clean:{name}", seed=3)
    changed = [not np.array_equal(out[i], faces[i]) for i in range(8)]
    assert changed == [True, False, False, True, True, False, False, True]  # one face per pair
    # the masked faces wear the new style: the same draw as a synthesizer of that style alone
    synth = masks_mod.MaskSynthesizer(styles=[name])
    expect = synth.apply(faces[0], np.random.default_rng([3, 0]))[0]
    assert np.array_equal(out[0], expect)
