"""`g2d-lfw`: the real-face comparison on LFW (View 1) with dlib's ResNet as the teacher."""

from .common import exit_cli, make_parser, run_subcommand


def build_parser():
    parser = make_parser(
        "g2d-lfw",
        "Real faces, real teacher: train G2D and its baselines on LFW View 1 DevTrain and compare them on\n"
        "DevTest pairs (clean, masked with seen and with held-out mask styles). Needs the [dlib] extra and an\n"
        "LFW folder (lfw-deepfunneled/, landmarks5.tsv, View 1 files): --lfw-root or $G2D_LFW_ROOT.",
        "g2d-lfw compare --out work_dirs/lfw --parallel",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compare", help="prepare data and teacher cache, train every arm, write the table",
                       epilog="example:\n  g2d-lfw compare --out work_dirs/lfw --parallel\n"
                              "  g2d-lfw compare --out work_dirs/lfw --arm teacher --arm g2d "
                              "--set g2d:stages.reform.steps=2000",
                       formatter_class=parser.formatter_class)
    c.add_argument("--out", default="work_dirs/lfw", help="output folder (rerun the same command to resume)")
    c.add_argument("--lfw-root", help="LFW folder (default: $G2D_LFW_ROOT or ../shared/data/lfw)")
    c.add_argument("--arm", action="append", dest="arms",
                   help="arm to run: teacher, arcface_masked, distill, g2d, teacher_finetuned, g2d_pretrained, g2d_real, "
                        "teacher_finetuned_real "
                        "(repeatable; default: all)")
    c.add_argument("--set", action="append", default=[], metavar="ARM:KEY=VALUE",
                   help="config override for one arm, as g2d-train --set (e.g. g2d:stages.reform.steps=2000)")
    c.add_argument("--threads", type=int, default=1, help="torch threads per training (default 1)")
    c.add_argument("--parallel", action="store_true",
                   help="train the student arms as simultaneous processes (equal conditions; ~1 core each)")
    c.add_argument("--train-only", action="store_true", help="train the arms, skip the evaluation")
    c.set_defaults(func=_writing(cmd_compare))

    p = sub.add_parser("prepare", help="align the DevTrain faces and build the dlib teacher cache only",
                       epilog="example:\n  g2d-lfw prepare --out work_dirs/lfw", formatter_class=parser.formatter_class)
    p.add_argument("--out", default="work_dirs/lfw")
    p.add_argument("--lfw-root")
    p.set_defaults(func=_writing(cmd_prepare))

    t = sub.add_parser("teacher-check", help="the dlib teacher's accuracy on LFW View 2 (6,000 clean pairs)",
                       epilog="example:\n  g2d-lfw teacher-check --out work_dirs/lfw/teacher_view2\n"
                              "  g2d-lfw teacher-check --engine torch --engine dlib-bin   # ours against dlib itself",
                       formatter_class=parser.formatter_class)
    t.add_argument("--out", default="work_dirs/lfw/teacher_view2")
    t.add_argument("--lfw-root")
    t.add_argument("--engine", action="append", dest="engines", choices=("torch", "dlib-bin"),
                   help="torch: dlib's network in PyTorch (default); dlib-bin: dlib itself (slow, ~0.1 s a face); "
                        "repeat to compare them on the same pairs")
    t.set_defaults(func=_writing(cmd_teacher_check))

    w = sub.add_parser("whole-photos", help="DevTest as whole photos, masked and clean, with pairs files for "
                                            "g2d-eval real-masks (end to end through the front end)",
                       epilog="example:\n  g2d-lfw whole-photos --out work_dirs/lfw_whole\n"
                              "  g2d-eval real-masks --root work_dirs/lfw_whole --pairs-dir work_dirs/lfw_whole "
                              "--model teacher=dlib --out work_dirs/lfw_whole/eval",
                       formatter_class=parser.formatter_class)
    w.add_argument("--out", default="work_dirs/lfw_whole")
    w.add_argument("--lfw-root")
    w.add_argument("--styles", nargs="+", default=None, metavar="STYLE",
                   help="mask styles drawn on the photos (default: n95 textured, the styles training never sees)")
    w.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    w.set_defaults(func=_writing(cmd_whole_photos))
    return parser


def cmd_whole_photos(args):
    from ..experiments.lfw import lfw_root
    from ..experiments.lfw_whole_photos import HELD_OUT_STYLES, write_whole_photo_pairs

    styles = args.styles or HELD_OUT_STYLES
    out = write_whole_photo_pairs(lfw_root(args.lfw_root), args.out, styles=styles, seed=args.seed)
    print(f"wrote {out}/masked/ and pairs_clean_clean.txt, pairs_masked_clean.txt, pairs_masked_masked.txt; next:\n"
          f"  g2d-eval real-masks --root {out} --pairs-dir {out} --model teacher=dlib --out {out}/eval")
    return 0


def _writing(command):
    """`command(args)` with failed writes under --out as one-line errors (fileio.write_errors)."""
    def run(args):
        from ..fileio import write_errors

        with write_errors(args.out):
            return command(args)
    return run


def _overrides(items):
    from ..errors import ConfigError
    from ..experiments.lfw import find_arm

    out = {}
    for item in items:
        arm, sep, setting = item.partition(":")
        if not sep or "=" not in setting:
            raise ConfigError(f"--set {item!r}: expected ARM:KEY=VALUE, e.g. g2d:stages.reform.steps=2000")
        out.setdefault(find_arm(arm).name, []).append(setting)
    return out


def cmd_compare(args):
    from ..experiments.lfw import run_comparison

    if args.threads < 1:
        from ..errors import ConfigError

        raise ConfigError("--threads must be at least 1")
    text = run_comparison(args.out, root=args.lfw_root, arms=args.arms, threads=args.threads,
                          overrides=_overrides(args.set), parallel=args.parallel, train_only=args.train_only)
    if text:
        print(text)


def cmd_prepare(args):
    from pathlib import Path

    from ..experiments.lfw import lfw_root, prepare_training_data

    devtrain, count, people, cache, _ = prepare_training_data(lfw_root(args.lfw_root), Path(args.out))
    print(f"{count} aligned faces of {people} people in {devtrain}")
    print(f"dlib teacher cache: {cache}")


def cmd_teacher_check(args):
    from ..evaluation.compare import compare
    from ..experiments.lfw import lfw_root, lfw_target

    target = lfw_target("view2", lfw_root(args.lfw_root), "pairs.txt")
    engines = list(dict.fromkeys(args.engines or ["torch"]))
    models = [(f"dlib ({engine})", "dlib" if engine == "torch" else f"dlib:{engine}") for engine in engines]
    doc = compare(models, [target], protocols=("clean",), out_dir=args.out, flip=False)
    accuracy = {}
    for label, _ in models:
        m = doc["results"][label]["view2"]["clean"]
        accuracy[label] = 100 * m["accuracy"]
        print(f"{label} teacher on LFW View 2 (6,000 pairs, aligned 112x112 crops, no flip): "
              f"{100 * m['accuracy']:.2f} ± {100 * m['accuracy_std']:.2f} %")
    if len(models) == 2:
        print(f"difference: {abs(accuracy[models[0][0]] - accuracy[models[1][0]]):.2f} points")


def main(argv=None):
    return run_subcommand(build_parser(), argv)


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
