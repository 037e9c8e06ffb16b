"""Every console command of setup.py, and every subcommand, has --help naming the command and an example."""
import argparse
import importlib
import re
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
SCRIPTS = re.findall(r'"(g2d-[a-z]+)=([\w.]+):(\w+)"', SETUP.read_text())


def _parser_of(module):
    """The top-level ArgumentParser `module.main` builds (captured when it parses --help)."""
    seen = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        seen.append(self)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            module.main(["--help"])
    finally:
        argparse.ArgumentParser.parse_args = real
    return seen[0]


def _walk(parser, name):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _walk(sub, f"{name} {sub_name}")


def test_setup_lists_the_commands():
    assert {s for s, _, _ in SCRIPTS} >= {"g2d-info", "g2d-mask", "g2d-recordio", "g2d-data", "g2d-train", "g2d-cache",
                                          "g2d-eval", "g2d-lfw"}


@pytest.mark.parametrize("script,module,func", SCRIPTS, ids=[s for s, _, _ in SCRIPTS])
def test_help_names_the_command_and_has_an_example(script, module, func):
    mod = importlib.import_module(module)
    assert callable(getattr(mod, func))
    commands = list(_walk(_parser_of(mod), script))
    for name, parser in commands:
        text = parser.format_help()
        assert text.startswith(f"usage: {name}"), (name, text[:80])
        found = re.search(r"\nexamples?:\n  (.*)", text)
        assert found, f"{name} --help has no example"
        assert found.group(1).split()[0] in (script, "cd", "torchrun", "python"), (name, found.group(1))
