"""Shared helpers for the command-line tools."""
import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager

from ..errors import G2DError, Terminated, raise_terminated

INTERRUPTED_EXIT = 130  # 128 + SIGINT
TERMINATED_EXIT = 143  # 128 + SIGTERM


def run_cli(main, argv=None):
    """Run ``main(argv)``; turn the project's own errors into one line on stderr and exit code 2.

    Programming errors still raise with a traceback: those are bugs to report, not bad input.
    A reader that goes away (`g2d-info --all | head -2`) ends the tool quietly with exit code 141
    (128 + SIGPIPE, what a C tool killed by the signal reports). Ctrl-C (SIGINT) prints
    "interrupted" and exits 130; SIGTERM is handled the same way ("terminated", 143) instead of
    killing the process on the spot, so temporary files are removed and locks released first
    (g2d-train's training loop turns both into a checkpoint and exit 0 instead).
    """
    return _run_handled(main, argv, after=signal.SIG_DFL)


def exit_cli(main, argv=None):
    """A console script's entry: ``run_cli(main)``, then exit with its code. SIGTERM stays handled
    until the process ends: one that lands after the tool's last line (the interpreter's shutdown
    takes a second with torch loaded) prints "terminated (SIGTERM)" and exits 143 instead of
    killing the process without a word."""
    sys.exit(_run_handled(main, argv, after=_terminated_at_exit))


def _run_handled(main, argv, after):
    with _sigterm_raises(after):
        try:
            return _run(main, argv)
        except Terminated:  # landed while _run reported another ending
            return _report_terminated()


def _report_terminated():
    try:
        print("terminated (SIGTERM)", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return TERMINATED_EXIT


def _terminated_at_exit(signum=None, frame=None):
    """SIGTERM after the tool returned: its work is done and written; say so and end now (exit
    handlers left to run could take as long again)."""
    _report_terminated()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(TERMINATED_EXIT)


@contextmanager
def _sigterm_raises(after=signal.SIG_DFL):
    """SIGTERM raises errors.Terminated while inside, where it would otherwise kill the process, and
    is handled by `after` once outside (left as it is when the process started with SIGTERM ignored,
    or another handler is installed)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, after)


def _run(main, argv):
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
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
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
