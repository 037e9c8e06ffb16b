"""The marked get_model block as text: insert and strip are exact inverses on many file shapes."""
import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insightface_g2d.integration import IntegrationError, find_blocks, insert_block, strip_blocks
from insightface_g2d.integration.block import split_lines


@st.composite
def get_model_sources(draw):
    """(source, name_arg, kwargs_arg, body_indent, newline) for varied `def get_model` files."""
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    unit = draw(st.sampled_from(["    ", "  ", "\t"]))
    name_arg = draw(st.sampled_from(["name", "arch", "n"]))
    kwargs_arg = draw(st.sampled_from(["kwargs", "kw", "options"]))
    multiline = draw(st.booleans())
    header = (f"def get_model(\n{unit}{name_arg},  # network name\n{unit}**{kwargs_arg}\n):" if multiline
              else f"def get_model({name_arg}, **{kwargs_arg}):  # trailing comment")
    body = []
    if draw(st.booleans()):
        body.append(f'{unit}"""Build a network.\n\n{unit}Longer text.\n{unit}"""')
    body += [f"{unit}# {w}" for w in draw(st.lists(st.sampled_from(["resnet", "mbf", ""]), max_size=2))]
    if draw(st.booleans()):
        body.append("")
    body += [f'{unit}if {name_arg} == "r18":', f"{unit}{unit}return 18",
             f'{unit}elif {name_arg} == "mbf":', f"{unit}{unit}return {kwargs_arg}",
             f"{unit}else:", f"{unit}{unit}raise ValueError()"]
    before = draw(st.sampled_from(["", "import os\n\n\n", '"""Backbones."""\nX = 1\n\n\ndef other(a):\n    return a\n\n\n']))
    after = draw(st.sampled_from(["", "\n\nY = 2\n", "\n\ndef later():\n    pass"]))
    text = before + header + "\n" + "\n".join(body) + "\n" + after
    return text.replace("\n", nl), name_arg, kwargs_arg, unit, nl


@settings(max_examples=150, deadline=None)
@given(get_model_sources(), st.sampled_from(["0.1.0", "1.2.3rc1", "0.0.9"]))
def test_insert_then_strip_gives_back_the_same_text(case, version):
    source, name_arg, kwargs_arg, unit, nl = case
    out = insert_block(source, version)
    assert strip_blocks(out) == source
    blocks = find_blocks(out)
    assert [b.version for b in blocks] == [version]
    lines = split_lines(out)
    block_lines = lines[blocks[0].start:blocks[0].end]
    assert all(line.endswith(nl) and line.startswith(unit) for line in block_lines)
    assert len(block_lines) == 5
    # the block is the first statement of get_model (after a docstring), routing the first parameter
    func = [n for n in ast.parse(out).body if isinstance(n, ast.FunctionDef) and n.name == "get_model"][0]
    body = func.body[1:] if isinstance(func.body[0], ast.Expr) else func.body
    first = body[0]
    assert isinstance(first, ast.If)
    assert ast.unparse(first.test) == f"isinstance({name_arg}, str) and {name_arg}.startswith('g2d')"
    assert ast.unparse(first.body[-1]) == f"return g2d_get_model({name_arg}, **{kwargs_arg})"
    # inserting into a file that already has a block is refused by find/strip semantics: re-insert
    # after strip gives the same text (what install does on every run)
    assert insert_block(strip_blocks(out), version) == out


def test_block_goes_after_a_docstring_and_before_comments():
    src = 'def get_model(name, **kwargs):\n    """Doc."""\n    # resnet\n    return name\n'
    out = insert_block(src, "0.1.0").splitlines()
    assert out[1] == '    """Doc."""'
    assert out[2].startswith("    # >>> insightface_g2d 0.1.0 >>>")
    assert out[7] == "    # resnet"


def test_a_get_model_method_or_nested_function_is_not_the_target():
    src = "class A:\n    def get_model(self, name, **kw):\n        return 1\n"
    with pytest.raises(IntegrationError, match="no module-level 'def get_model"):
        insert_block(src, "0.1.0")


@pytest.mark.parametrize("src,match", [
    ("def get_model(name, **kw): return name\n", "body starts on its 'def' line"),
    ("def get_model(name):\n    return name\n", r"no \(name, \*\*kwargs\) parameters"),
    ("def get_model(name, **kw)\n    return name\n", "not valid Python"),
])
def test_odd_get_model_sources_are_refused(src, match):
    with pytest.raises(IntegrationError, match=match):
        insert_block(src, "0.1.0")


def test_form_feed_lines_keep_python_line_numbers():
    """str.splitlines would split at the form feed and put the block in the wrong place."""
    src = "X = 1  # \x0c page\n\ndef get_model(name, **kwargs):\n    # c\n    return name\n"
    out = insert_block(src, "0.1.0")
    assert split_lines(out)[3].startswith("    # >>> insightface_g2d")
    assert split_lines(out)[2] == "def get_model(name, **kwargs):\n"
    assert strip_blocks(out) == src


def test_several_blocks_are_all_stripped():
    src = "def get_model(name, **kwargs):\n    return name\n"
    twice = insert_block(insert_block(src, "0.0.1"), "0.0.2")
    assert [b.version for b in find_blocks(twice)] == ["0.0.2", "0.0.1"]
    assert strip_blocks(twice) == src
