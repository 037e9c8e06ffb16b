"""Shared helpers for the command-line tools."""
import argparse
import os
import sys

from ..errors import G2DError


def run_cli(main, argv=None):
    """Run ``main(argv)``; turn the project's own errors into one line on stderr and exit code 2.

    Programming errors still raise with a traceback: those are bugs to report, not bad input.
    A reader that goes away (`g2d-info --all | head -2`) ends the tool quietly with exit code 141
    (128 + SIGPIPE, what a C tool killed by the signal reports).
    """
    try:
        code = main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        return _broken_pipe()
    except SystemExit:  # argparse's --help and usage errors: their output may have hit the closed pipe
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _broken_pipe()
        raise
    except G2DError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)


BROKEN_PIPE_EXIT = 141


def _broken_pipe():
    """Point stdout at /dev/null so the interpreter's final flush stays quiet; the exit code."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured in tests)
        pass
    return BROKEN_PIPE_EXIT


def make_parser(prog, description, example):
    """An argparse parser whose --help ends with a usage example."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_subcommand(subparsers, name, help, example, description=None):
    """A subcommand parser whose --help shows its description and ends with a usage example."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_subcommand(parser, argv=None, check=None):
    """Parse `argv`, then call the chosen subcommand's `func(args)`; without one, print help (exit 2).

    `check(parser, args)` may reject argument combinations with `parser.error`.
    """
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if check is not None:
        check(parser, args)
    return args.func(args)
