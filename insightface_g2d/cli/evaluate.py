"""`g2d-eval`: evaluation commands. Each subcommand lives in its own module with
`add_parser(subparsers)` registering itself and setting `func(args)` as the parser default."""
import importlib

from .common import exit_cli, make_parser, run_subcommand

SUBCOMMAND_MODULES = (
    "insightface_g2d.cli.eval_verify",   # verify, write-masked-bin, pairs
    "insightface_g2d.cli.eval_compare",  # compare, ijb, export-onnx
    "insightface_g2d.cli.eval_make_bin",  # make-bin
    "insightface_g2d.cli.eval_make_pairs",  # make-pairs
    "insightface_g2d.cli.eval_real_masks",  # real-masks
)


def build_parser():
    parser = make_parser(
        "g2d-eval",
        "Evaluate face recognition backbones (G2D, arcface_torch networks, ONNX) on clean and masked faces.",
        "g2d-eval compare --model g2d_t:work_dirs/demo/model.pt --model r50:ms1mv3_r50/backbone.pth "
        "--target lfw.bin --protocol clean --protocol masked-masked",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv=None):
    return run_subcommand(build_parser(), argv)


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
