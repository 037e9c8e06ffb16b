"""g2d-train: run a G2D training config (stages in order, resumable), optionally under torchrun."""
import sys

from .common import exit_cli, make_parser

EXAMPLE = """g2d-train recipes/configs/demo.py                      # the CPU demo, end to end
  g2d-train recipes/configs/ms1mv3_r100.py --stage reform --set stages.reform.epochs=5
  torchrun --nproc_per_node 8 -m insightface_g2d.cli.train recipes/configs/ms1mv3_r100.py
  (Ctrl-C saves a checkpoint; the same command resumes)"""


def build_parser():
    p = make_parser("g2d-train", "Train G2D (inpaint -> reform -> classify) or any stage list of a config "
                    "file in arcface_torch's format. Finished stages are skipped; an interrupted stage resumes "
                    "from its last checkpoint.", EXAMPLE)
    p.add_argument("config", help="job config file (Python, arcface_torch format; it is executed: trust it)")
    p.add_argument("--stage", help="run only this stage (earlier finished stages are loaded)")
    p.add_argument("--output", help="output folder (default: config.output or work_dirs/<config name>)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (Python literal); dotted keys reach into dicts and stages, "
                        "e.g. --set lr=0.01 --set stages.reform.steps=200 --set teacher.checkpoint=r100.pth")
    p.add_argument("--resume", default=None,
                   help="auto (default: continue from OUTPUT/checkpoint_gpu_<rank>.pt), never, or a checkpoint "
                        "path ('{rank}' in it is replaced by the process rank under torchrun)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads on CPU (default: config.cpu_threads, else torch's choice; 1 is often "
                        "fastest on a small or busy machine)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation that config.eval asks for")
    p.add_argument("--apply-changes", action="store_true",
                   help="resume a stage whose settings changed (e.g. --set stages.reform.lr=0.01): the new learning "
                        "rate and other optimizer values are set in the restored optimizer and schedule (without "
                        "it such a resume is refused; changes of batch size, length or modules are always refused)")
    return p


def resume_command(argv):
    """The command line that continues this run: the same arguments, without --resume (an explicit
    checkpoint is used once; 'never' would start over)."""
    import shlex

    out, skip = ["g2d-train"], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--resume":
            skip = True
            continue
        if arg.startswith("--resume="):
            continue
        out.append(arg)
    return shlex.join(out)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from ..training.config import load_config
    from ..training.runner import run_training

    cfg = load_config(args.config, args.overrides)
    if args.threads:
        cfg.cpu_threads = args.threads
    summary = run_training(cfg, output=args.output, device=args.device, stage=args.stage, resume=args.resume,
                           evaluate=not args.no_eval, apply_changes=args.apply_changes,
                           command=resume_command(argv))
    return 0 if summary["status"] in ("finished", "stopped", "partial") else 1


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
