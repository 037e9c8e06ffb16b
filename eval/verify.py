"""Verification on insightface .bin sets: `python eval/verify.py --model SPEC --bin lfw.bin [--protocol ...]`.

Same as `g2d-eval verify ...`; run with --help for all options.
"""
import sys

from insightface_g2d.cli.common import exit_cli
from insightface_g2d.cli.evaluate import main

if __name__ == "__main__":
    exit_cli(main, ["verify"] + sys.argv[1:])
