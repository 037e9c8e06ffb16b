"""`g2d-recordio`: RecordIO tools without mxnet (rebuild a missing ``.idx``)."""
from pathlib import Path

from ..data.recordio import build_index, default_idx_path
from ..errors import DataError
from .common import add_subcommand, exit_cli, make_parser


def main(argv=None):
    parser = make_parser("g2d-recordio", "RecordIO tools (no mxnet needed). To write a .rec from an image "
                         "folder use `g2d-data pack`.", "g2d-recordio index /data/ms1m/train.rec")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = add_subcommand(sub, "index", "scan a .rec and write its .idx (keys 0..N-1 in file order)",
                       "g2d-recordio index /data/ms1m-retinaface-t1/train.rec   # writes train.idx beside it")
    p.add_argument("rec", help="path of the .rec file")
    p.add_argument("--idx", default=None, help="output .idx path (default: REC with suffix .idx)")
    p.add_argument("--force", action="store_true", help="overwrite an existing .idx")
    args = parser.parse_args(argv)
    if args.cmd == "index":
        idx = Path(args.idx) if args.idx else default_idx_path(args.rec)
        if idx.exists() and not args.force:
            raise DataError(f"{idx} exists; pass --force to overwrite it")
        n = build_index(args.rec, idx, progress=True)
        print(f"wrote {idx}: {n} records")
    return 0


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
