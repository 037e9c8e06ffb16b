"""Export a backbone to ONNX: `python eval/export_onnx.py --network g2d --checkpoint model.pt --out g2d.onnx --check`.

Same as `g2d-eval export-onnx ...`; run with --help for all options.
"""
import sys

from insightface_g2d.cli.common import exit_cli
from insightface_g2d.cli.evaluate import main

if __name__ == "__main__":
    exit_cli(main, ["export-onnx"] + sys.argv[1:])
