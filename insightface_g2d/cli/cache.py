"""`g2d-cache`: precompute, import and inspect teacher embedding caches."""
import os

from ..errors import ConfigError
from .common import add_subcommand, exit_cli, make_parser, run_subcommand


def _dataset(spec, skip_bad=False):
    from ..data.factory import build_face_dataset  # lazy: keeps --help fast

    return build_face_dataset(spec, skip_bad=skip_bad)


SKIP_BAD_HELP = "replace unreadable records/images by the next good one instead of stopping (logged)"


def build_parser():
    parser = make_parser(
        "g2d-cache",
        "Teacher embedding caches for the reform (distillation) stage: run the teacher once over the\n"
        "training set's clean faces and their flips, then train without a live teacher.",
        "g2d-cache build --dataset data/ms1m-retinaface-t1 --teacher-network r100 "
        "--teacher-checkpoint ms1mv3_arcface_r100_fp16/backbone.pth --out work_dirs/cache_r100\n"
        "  g2d-cache build --dataset work_dirs/lfw/devtrain --teacher-dlib --flips reuse --jobs 2 --out work_dirs/lfw/cache_dlib",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    b = add_subcommand(sub, "build", "run a teacher over a dataset and write a cache",
                       "g2d-cache build --dataset data/ms1m-retinaface-t1 --teacher-network r100 "
                       "--teacher-checkpoint ms1mv3_arcface_r100_fp16/backbone.pth --out work_dirs/cache_r100\n"
                       "  g2d-cache build --dataset faces_rec --teacher-onnx buffalo_l/w600k_r50.onnx --out cache_w600k")
    b.add_argument("--dataset", required=True, help="dataset spec: RecordIO folder/.rec, image folder, or synthetic:...")
    t = b.add_mutually_exclusive_group(required=True)
    t.add_argument("--teacher-network", help="teacher network name (r18..r200, mbf, ...); needs --teacher-checkpoint")
    t.add_argument("--teacher-onnx", help="teacher .onnx model (e.g. an insightface model pack's recognition model)")
    t.add_argument("--teacher-dlib", action="store_true",
                   help="dlib's ResNet face recognizer (128-d; pip install -e .[dlib])")
    t.add_argument("--teacher", metavar="SPEC",
                   help="any teacher spec as config.teacher's string form (NETWORK:CHECKPOINT, model.onnx, dlib, or "
                        "TYPE:VALUE of a type added to embedders.registry)")
    b.add_argument("--teacher-checkpoint", help="arcface_torch backbone.pth of --teacher-network")
    b.add_argument("--out", required=True, help="cache directory to create")
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--num-workers", type=int, default=0)
    b.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    b.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    b.add_argument("--overwrite", action="store_true", help="replace an existing cache at --out")
    b.add_argument("--jobs", type=int, default=1,
                   help="processes running a CPU-bound teacher (dlib, as --teacher-dlib or --teacher dlib) side by "
                        "side (default 1)")
    b.add_argument("--flips", choices=("compute", "reuse"), default="compute",
                   help="compute the teacher on each mirrored face too (default), or reuse the clean embedding "
                        "for it (half the cost; for slow teachers such as dlib)")
    b.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    b.set_defaults(func=cmd_build)

    i = add_subcommand(sub, "import", "make a cache from embeddings computed elsewhere (N x D .npy, sample order)",
                       "g2d-cache import --dataset faces_rec --embeddings emb.npy --flipped emb_flip.npy "
                       "--name dlib --out cache_dlib")
    i.add_argument("--dataset", required=True, help="the dataset the embeddings belong to")
    i.add_argument("--embeddings", required=True, help="N x D .npy of the clean faces, in the dataset's order")
    i.add_argument("--flipped", help="N x D .npy of the flipped faces (default: reuse the clean ones)")
    i.add_argument("--name", help="teacher name to record (default: the embeddings file name)")
    i.add_argument("--out", required=True, help="cache directory to create")
    i.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    i.add_argument("--overwrite", action="store_true", help="replace an existing cache at --out")
    i.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    i.set_defaults(func=cmd_import)

    n = add_subcommand(sub, "info", "describe a cache (and check it against a dataset)",
                       "g2d-cache info work_dirs/cache_r100 --dataset data/ms1m-retinaface-t1")
    n.add_argument("directory")
    n.add_argument("--dataset", help="also check that the cache matches this dataset")
    n.set_defaults(func=cmd_info)
    return parser


# The convenience flags --teacher-KEY VALUE are the spec {KEY: VALUE} (see _teacher_spec); these take paths.
PATH_FLAGS = ("teacher_checkpoint", "teacher_onnx")


def _teacher_spec(args):
    """The teacher spec of the command line for the factory to check and build: --teacher SPEC as
    written, or the convenience flags --teacher-KEY VALUE as {KEY: VALUE} (paths made absolute, so
    the cache's rebuild hint works from any folder). --jobs becomes the spec's `workers` when its
    type takes that option (a CPU-bound teacher such as dlib), whichever way the type was named."""
    from ..embedders.factory import parse_spec, with_option

    if args.teacher_network and not args.teacher_checkpoint:
        raise ConfigError("--teacher-network needs --teacher-checkpoint (the arcface_torch backbone.pth)")
    if args.teacher_checkpoint and not args.teacher_network:
        raise ConfigError("--teacher-checkpoint goes with --teacher-network (or write --teacher NETWORK:CHECKPOINT)")
    if args.teacher:
        spec = parse_spec(args.teacher, "--teacher")
    else:
        spec = {dest[len("teacher_"):]: os.path.abspath(value) if dest in PATH_FLAGS else value
                for dest, value in vars(args).items() if dest.startswith("teacher_") and value}
    return with_option(spec, "workers", args.jobs, "--teacher")


def cmd_build(args):
    from ..devices import select_device
    from ..embedders.factory import build_teacher
    from ..teachers import build_teacher_cache

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    spec = _teacher_spec(args)
    dataset = _dataset(args.dataset, skip_bad=args.skip_bad)
    teacher = build_teacher(spec, device=select_device(args.device))
    cache = build_teacher_cache(
        teacher, dataset, args.out, batch_size=args.batch_size, num_workers=args.num_workers,
        dtype=args.dtype, overwrite=args.overwrite, dataset_spec=args.dataset, teacher_spec=spec,
        teacher_arg=args.teacher,
        flips="reused-clean" if args.flips == "reuse" else "computed",
    )
    print(f"wrote {cache.count} x 2 x {cache.dim} {args.dtype} embeddings of {teacher.name} to {args.out}")


def cmd_import(args):
    from ..teachers import import_embeddings

    dataset = _dataset(args.dataset, skip_bad=args.skip_bad)
    name = args.name or os.path.splitext(os.path.basename(args.embeddings))[0]
    cache = import_embeddings(args.embeddings, dataset, args.out, name, flipped=args.flipped, dtype=args.dtype,
                              overwrite=args.overwrite, dataset_spec=args.dataset)
    how = "with flipped embeddings" if args.flipped else "flipped faces reuse the clean embeddings"
    print(f"imported {cache.count} x {cache.dim} embeddings ({how}) to {args.out}")


def cmd_info(args):
    from ..teachers import TeacherCache
    from ..teachers.cache import EMBEDDINGS, read_manifest

    manifest = read_manifest(args.directory)
    for key in ("teacher", "count", "dim", "dtype", "flipped", "fingerprint", "complete", "done", "created",
                "source", "dataset_spec"):
        if key in manifest:
            print(f"{key:12s} {manifest[key]}")
    path = os.path.join(args.directory, EMBEDDINGS)
    if os.path.isfile(path):
        print(f"{'size':12s} {os.path.getsize(path) / 2**20:.1f} MiB")
    TeacherCache(args.directory, dataset=_dataset(args.dataset) if args.dataset else None)
    if args.dataset:
        print(f"matches dataset {args.dataset}")
    return 0


def main(argv=None):
    return run_subcommand(build_parser(), argv)


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
