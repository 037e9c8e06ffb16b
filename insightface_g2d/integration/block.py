"""The marked block that routes arcface_torch's ``get_model("g2d*")`` to insightface_g2d.

Pure text functions: ``insert_block(source, version)`` and ``strip_blocks(source)`` work on the
source of arcface_torch's ``backbones/__init__.py`` and are exact inverses: the block is whole
lines inserted right after the ``def get_model(...)`` header (after a docstring, if any), so
stripping it gives back the original text character for character.

The block, for version 0.1.0 and 4-space indentation::

    def get_model(name, **kwargs):
        # >>> insightface_g2d 0.1.0 >>> G2D backbones; remove with `g2d-arcface uninstall`
        if isinstance(name, str) and name.startswith("g2d"):
            from insightface_g2d import get_model as g2d_get_model
            return g2d_get_model(name, **kwargs)
        # <<< insightface_g2d 0.1.0 <<<
        ...

The marker prefixes ``# >>> insightface_g2d `` and ``# <<< insightface_g2d `` are a fixed
format: every version finds (and replaces) the blocks of every other version by them.
"""
import ast
import re
from dataclasses import dataclass

from .errors import IntegrationError

BEGIN_PREFIX = "# >>> insightface_g2d "
END_PREFIX = "# <<< insightface_g2d "
_BEGIN_RE = re.compile(r"^[ \t]*# >>> insightface_g2d (?P<version>\S+)")
_END_RE = re.compile(r"^[ \t]*# <<< insightface_g2d\b")
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class Block:
    """One marked block found in a source: lines [start, end) (0-based) and its version."""

    start: int
    end: int
    version: str


def render_block(version, indent="    ", unit="    ", name_arg="name", kwargs_arg="kwargs", newline="\n"):
    """The block's lines (each ending with ``newline``) at body indentation ``indent``."""
    inner = indent + unit
    lines = [
        f"{indent}{BEGIN_PREFIX}{version} >>> G2D backbones; remove with `g2d-arcface uninstall`",
        f'{indent}if isinstance({name_arg}, str) and {name_arg}.startswith("g2d"):',
        f"{inner}from insightface_g2d import get_model as g2d_get_model",
        f"{inner}return g2d_get_model({name_arg}, **{kwargs_arg})",
        f"{indent}{END_PREFIX}{version} <<<",
    ]
    return [line + newline for line in lines]


def find_blocks(source):
    """All marked blocks in ``source`` (str), in order.

    Raises IntegrationError when the markers are unbalanced (a begin without its end, or the
    other way round): such a file was edited by hand and needs a look before anything rewrites it.
    """
    blocks, start, version = [], None, None
    for i, line in enumerate(split_lines(source)):
        begin = _BEGIN_RE.match(line)
        if begin:
            if start is not None:
                raise _unbalanced(f"line {i + 1} opens a block while the one opened at line {start + 1} is not closed")
            start, version = i, begin.group("version")
        elif _END_RE.match(line):
            if start is None:
                raise _unbalanced(f"line {i + 1} closes a block that was never opened")
            blocks.append(Block(start, i + 1, version))
            start = None
    if start is not None:
        raise _unbalanced(f"the block opened at line {start + 1} is never closed")
    return blocks


def _unbalanced(detail):
    return IntegrationError(
        f"the insightface_g2d markers in backbones/__init__.py are unbalanced ({detail}); remove the "
        f"lines between '{BEGIN_PREFIX}...' and '{END_PREFIX}...' by hand (or restore the file from git) "
        "and run the command again")


def strip_blocks(source):
    """``source`` without any marked block (every version)."""
    lines = split_lines(source)
    for block in reversed(find_blocks(source)):
        del lines[block.start:block.end]
    return "".join(lines)


def insert_block(source, version):
    """``source`` (without blocks) with the block inserted at the top of ``get_model``.

    Raises IntegrationError when there is no module-level ``def get_model(name, **kwargs)`` with
    its body on lines of their own.
    """
    lines = split_lines(source)
    func = find_get_model(source)
    first = func.body[0]
    body_line = lines[first.lineno - 1]
    indent = body_line[:first.col_offset]
    if indent.strip():
        raise IntegrationError(
            "backbones/__init__.py: get_model's body starts on its 'def' line; expected the body on "
            "lines of its own, as in arcface_torch")
    # After the docstring if there is one, else right after the (possibly multi-line) header,
    # above any comment lines that open the body.
    at = first.end_lineno if _is_docstring(first) else _header_end(lines, func)
    if not lines[at - 1].endswith(("\n", "\r")):
        raise IntegrationError("backbones/__init__.py ends inside get_model's docstring line; add a newline")
    def_indent = lines[func.lineno - 1][:func.col_offset]
    unit = indent[len(def_indent):] or "    "
    newline = _newline_of(lines[at - 1])
    block = render_block(version, indent, unit, func.args.args[0].arg, func.args.kwarg.arg, newline)
    return "".join(lines[:at] + block + lines[at:])


def find_get_model(source):
    """The module-level ``get_model`` FunctionDef of ``source``; IntegrationError if absent or odd."""
    try:
        tree = ast.parse(source.lstrip("\ufeff"))
    except SyntaxError as err:
        raise IntegrationError(
            f"backbones/__init__.py is not valid Python ({err.msg}, line {err.lineno}); "
            "restore it from git before installing") from None
    funcs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "get_model"]
    if not funcs:
        raise IntegrationError(
            "backbones/__init__.py has no module-level 'def get_model(name, **kwargs)'; "
            "is this arcface_torch's backbones package?")
    func = funcs[-1]  # the one that wins at import time
    if not func.args.args or func.args.kwarg is None:
        raise IntegrationError(
            "backbones/__init__.py: get_model has no (name, **kwargs) parameters; expected "
            "'def get_model(name, **kwargs)' as in arcface_torch")
    return func


def split_lines(text):
    """Lines with their endings, split only at \\n, \\r\\n and \\r (as Python's parser numbers lines;
    ``str.splitlines`` also splits at form feeds and other separators)."""
    return _LINE_RE.findall(text)


def _header_end(lines, func):
    """1-based number of the last line of ``func``'s header (its 'def ...:' may span lines)."""
    at = func.body[0].lineno - 1
    while at > func.lineno and _is_blank_or_comment(lines[at - 1]):
        at -= 1
    return at


def _is_blank_or_comment(line):
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _is_docstring(node):
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _newline_of(line):
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith("\r"):
        return "\r"
    return "\n"
