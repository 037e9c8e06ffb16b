"""`g2d-arcface`: install G2D into an arcface_torch checkout (or take it out, or show what is there)."""
import sys

from ..integration import MANIFEST_NAME, install, status, uninstall
from .common import add_subcommand, make_parser, run_cli, run_subcommand

EXAMPLE = """g2d-arcface install ~/insightface/recognition/arcface_torch --dry-run
  g2d-arcface install ~/insightface/recognition/arcface_torch
  cd ~/insightface/recognition/arcface_torch && python train_v2.py configs/g2d_ms1mv3_r100.py
  g2d-arcface uninstall ~/insightface/recognition/arcface_torch"""


def build_parser():
    parser = make_parser(
        "g2d-arcface",
        "Make arcface_torch's get_model('g2d'|'g2d_s'|'g2d_t'|'g2d_l') build insightface_g2d's G2D "
        "network and copy the G2D recipe configs into its configs/ folder. Changes are recorded in "
        f"{MANIFEST_NAME} inside the checkout; uninstall restores the original files byte for byte.",
        EXAMPLE,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = add_subcommand(sub, "install", "install (or upgrade) G2D in a checkout; running it twice changes nothing",
                       "g2d-arcface install ~/insightface/recognition/arcface_torch --dry-run   # show the diff first")
    p.add_argument("checkout", help="path of insightface's recognition/arcface_torch folder")
    p.add_argument("--configs", default=None, metavar="DIR",
                   help="folder of recipe configs to copy (default: this package's recipes/configs)")
    p.add_argument("--dry-run", action="store_true", help="print the unified diff and change nothing")
    p.set_defaults(func=_install)
    p = add_subcommand(sub, "uninstall", "remove what install added, restoring the original files",
                       "g2d-arcface uninstall ~/insightface/recognition/arcface_torch")
    p.add_argument("checkout", help="path of insightface's recognition/arcface_torch folder")
    p.add_argument("--keep-modified", action="store_true",
                   help="leave installed configs edited since install in place (default: refuse)")
    p.add_argument("--dry-run", action="store_true", help="print the unified diff and change nothing")
    p.set_defaults(func=_uninstall)
    p = add_subcommand(sub, "status", "show what is installed in a checkout",
                       "g2d-arcface status ~/insightface/recognition/arcface_torch")
    p.add_argument("checkout", help="path of insightface's recognition/arcface_torch folder")
    p.set_defaults(func=_status)
    return parser


def main(argv=None):
    return run_subcommand(build_parser(), argv)


def _report(plan, dry_run, done_line, nothing_line):
    for note in plan.notes:
        print(f"note: {note}")
    if not plan.changed:
        print(nothing_line)
    elif dry_run:
        sys.stdout.write(plan.diff())
        print(f"dry run: {len(plan.changes)} file(s) would change in {plan.root}; nothing was written")
    else:
        for line in plan.summary():
            print(f"  {line}")
        print(done_line)
    return 0


def _install(args):
    plan = install(args.checkout, configs_dir=args.configs, dry_run=args.dry_run)
    from .. import __version__
    return _report(
        plan, args.dry_run,
        f"installed insightface_g2d {__version__} into {plan.root}; arcface_torch must run with a Python "
        f"that has insightface_g2d installed (this one: {sys.executable})",
        f"insightface_g2d {__version__} is already installed in {plan.root}; nothing changed")


def _uninstall(args):
    plan = uninstall(args.checkout, keep_modified=args.keep_modified, dry_run=args.dry_run)
    return _report(plan, args.dry_run, f"uninstalled insightface_g2d from {plan.root}",
                   f"insightface_g2d is not installed in {plan.root}; nothing to do")


def _status(args):
    info = status(args.checkout)
    print(f"checkout: {info['root']}")
    versions = info["block_versions"]
    if not versions:
        print("get_model: no G2D block (not installed)")
    else:
        state = "up to date" if info["up_to_date"] else f"this package is {info['package_version']}: run install to upgrade"
        print(f"get_model: G2D block of insightface_g2d {', '.join(versions)} ({state})")
    if info["manifest_version"] is None:
        print(f"manifest: none ({MANIFEST_NAME} absent{'; block from g2d.patch?' if versions else ''})")
    else:
        edited = "; backbones/__init__.py edited since install" if info["get_model_edited"] else ""
        print(f"manifest: {MANIFEST_NAME}, installed by insightface_g2d {info['manifest_version']}{edited}")
    for rel, state in info["configs"]:
        print(f"config: {rel} ({state})")
    return 0


def entry():
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry()
