"""Compare models on verification sets under masking protocols: `python eval/compare.py --model LABEL=SPEC ... --target lfw.bin --out DIR`.

Same as `g2d-eval compare ...`; run with --help for all options.
"""
import sys

from insightface_g2d.cli.common import exit_cli
from insightface_g2d.cli.evaluate import main

if __name__ == "__main__":
    exit_cli(main, ["compare"] + sys.argv[1:])
