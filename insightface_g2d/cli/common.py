"""Shared helpers for the command-line tools."""
import argparse
import sys

from ..errors import G2DError


def run_cli(main, argv=None):
    """Run ``main(argv)``; turn the project's own errors into one line on stderr and exit code 2.

    Programming errors still raise with a traceback: those are bugs to report, not bad input.
    """
    try:
        code = main(argv)
    except G2DError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)


def make_parser(prog, description, example):
    """An argparse parser whose --help ends with a usage example."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
