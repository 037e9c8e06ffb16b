"""Verification on an image folder + pairs list (LFW, MLFW, MFR2):
`python eval/pairs.py --model SPEC --root DIR --pairs pairs.txt [--landmarks TSV] [--protocol ...]`.

Same as `g2d-eval pairs ...`; run with --help for all options.
"""
import sys

from insightface_g2d.cli.common import exit_cli
from insightface_g2d.cli.evaluate import main

if __name__ == "__main__":
    exit_cli(main, ["pairs"] + sys.argv[1:])
