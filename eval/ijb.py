"""IJB-B / IJB-C 1:1 verification: `python eval/ijb.py --model SPEC --root IJBC --dataset IJBC [--mask-probe]`.

Same as `g2d-eval ijb ...`; run with --help for all options.
"""
import sys

from insightface_g2d.cli.common import exit_cli
from insightface_g2d.cli.evaluate import main

if __name__ == "__main__":
    exit_cli(main, ["ijb"] + sys.argv[1:])
