"""Kill g2d-train at random moments, resume it, and check the result equals an uninterrupted run.

    python benchmarks/kill_resume.py --kills 20 --seed 0

Trains a tiny config (g2d_t, 16 synthetic faces, 4 stages: baseline arcface, inpaint, reform,
classify; a step checkpoint every step; an inpainting preview every step and the evaluation at the
end, unless --no-previews / --no-eval) on CPU. First an uninterrupted reference run; then, in
rounds, a fresh output: the same command is started again and again, each time killed one of
these ways, until a run finishes on its own (and new rounds until --kills kills have landed):

* SIGKILL after a random number of logged steps (lands anywhere: in a step, a checkpoint write,
  a stage hand-over);
* SIGKILL as soon as a checkpoint's temporary file appears (inside the write);
* SIGKILL from inside torch.save, half the bytes written (G2D_KILL_IN_WRITE=N: the N-th save);
* SIGKILL just before the rename that publishes a checkpoint (G2D_KILL_BEFORE_RENAME=N);
* SIGTERM / SIGINT: the run must save, exit 0 and say how to resume;
* SIGKILL as soon as a new preview PNG appears (with previews on);
* SIGKILL as soon as the evaluation starts (with evaluation on).

At the end of each round every stage_<name>.pt and model.pt must hold tensors equal
(torch.equal) to the reference's, and eval.json the same figures. Prints the number of kills survived and exits 1 on any difference.

The kill-in-write hooks are installed by this script in the child process (the training code
has no test hook of its own): the child is `python kill_resume.py child CONFIG ...`.
"""
import argparse
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
STEP_LINE = re.compile(rb"\] step \d+/\d+")

TINY_CONFIG = '''from easydict import EasyDict as edict
config = edict()
config.network = "g2d_t"
config.embedding_size = 32
config.margin_list = (1.0, 0.0, 0.35)
config.batch_size = 8
config.optimizer = "adamw"
config.lr = 1e-3
config.weight_decay = 5e-4
config.seed = {seed}
config.num_workers = 0
config.frequent = {frequent}
config.rec = "{rec}"
config.teacher = dict(stage="baseline")
config.stages = [
    dict(name="baseline", kind="arcface", network="g2d_t", steps={steps}, scale=16.0),
    dict(name="inpaint", steps={steps}, batch_size=8, lr={inpaint_lr}, decoder_widths=(16, 8, 8), disc_widths=(8, 16, 16)),
    dict(name="reform", steps={steps}{student_options}),
    dict(name="classify", steps={steps}{student_options}),
]
config.checkpoint_every = {checkpoint_every}
config.preview_every = {preview_every}
config.eval = {eval}
'''
EVAL = 'dict(enabled=True, pairs="synthetic:ids=8,per_id=4,seed=3,offset=1000", num_pairs=40, batch_size=16)'


def tiny_config_text(steps, *, seed=7, frequent=1, rec="synthetic:ids=4,per_id=4,seed=3", inpaint_lr="1e-3",
                     student_options="", checkpoint_every=1, preview_every=1000, evaluate=False):
    """The tiny 4-stage config as Python source (also used by bench_memory.py). The defaults are
    this script's crash config; `student_options` is extra text for the reform and classify entries
    (e.g. ', optimizer="adamw", lr=1e-3'; without it they keep their kinds' own optimizer and lr)."""
    return TINY_CONFIG.format(steps=steps, seed=seed, frequent=frequent, rec=rec, inpaint_lr=inpaint_lr,
                              student_options=student_options, checkpoint_every=checkpoint_every,
                              preview_every=preview_every, eval=EVAL if evaluate else "dict(enabled=False)")


def write_config(folder, steps=3, previews=True, evaluate=True):
    """The crash config: a preview every step and the evaluation on, unless turned off."""
    path = Path(folder) / "tiny_crash.py"
    path.write_text(tiny_config_text(steps, preview_every=1 if previews else 1000, evaluate=evaluate))
    return path


# ------------------------------------------------------------------------------------------ child
def _install_hooks():
    """Kill hooks for the child process, from G2D_KILL_IN_WRITE / G2D_KILL_BEFORE_RENAME (1-based)."""
    import torch

    in_write = int(os.environ.get("G2D_KILL_IN_WRITE", "0"))
    before_rename = int(os.environ.get("G2D_KILL_BEFORE_RENAME", "0"))
    calls = {"save": 0, "replace": 0}
    if in_write:
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            calls["save"] += 1
            if calls["save"] != in_write or isinstance(f, (str, os.PathLike)):
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            print(f"KILL-IN-WRITE: save #{in_write}, {len(data) // 2} of {len(data)} bytes written", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = save
    if before_rename:
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(src).endswith(".tmp"):
                calls["replace"] += 1
                if calls["replace"] == before_rename:
                    print(f"KILL-BEFORE-RENAME: {os.path.basename(str(dst))}", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace


def child_main(argv):
    _install_hooks()
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.train import main

    sys.exit(run_cli(main, argv))


# ----------------------------------------------------------------------------------------- parent
def train_command(config, output):
    return [sys.executable, str(HERE), "child", str(config), "--output", str(output), "--device", "cpu",
            "--threads", "1"]


def _steps_logged(output):
    try:
        return len(STEP_LINE.findall((Path(output) / "training.log").read_bytes()))
    except FileNotFoundError:
        return 0


def _temp_files(output):
    try:
        return [n for n in os.listdir(output) if n.endswith(".tmp")]
    except FileNotFoundError:
        return []


def _previews(output):
    try:
        return set(os.listdir(Path(output) / "previews"))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _evaluating(output):
    try:
        return (Path(output) / "training.log").read_bytes().count(b"evaluation: ")
    except FileNotFoundError:
        return 0


def launch(config, output, *, env=None, after_steps=None, on_temp=False, on_preview=False, on_eval=False,
           send=signal.SIGKILL, timeout=600):
    """Run the training command once; optionally send `send` after `after_steps` more logged steps,
    as soon as a checkpoint temp file appears, a new preview PNG appears, or the evaluation starts.
    Returns (returncode, output text, what happened)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    start_steps = _steps_logged(output)
    start_temps = set(_temp_files(output))
    start_previews, start_evals = _previews(output), _evaluating(output)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(train_command(config, output), stdout=log, stderr=subprocess.STDOUT, env=full_env)
    event = None
    t0 = time.time()
    try:
        while proc.poll() is None:
            if time.time() - t0 > timeout:
                proc.kill()
                raise TimeoutError(f"training did not end within {timeout} s")
            if after_steps is not None and _steps_logged(output) - start_steps >= after_steps:
                proc.send_signal(send)
                event = f"{signal.Signals(send).name} after {after_steps} step(s)"
                break
            if on_temp and set(_temp_files(output)) - start_temps:
                proc.send_signal(send)
                event = f"{signal.Signals(send).name} when a checkpoint temp file appeared"
                break
            new = sorted(_previews(output) - start_previews) if on_preview else []
            if new:
                proc.send_signal(send)
                event = f"{signal.Signals(send).name} when preview {new[0]} appeared"
                break
            if on_eval and _evaluating(output) > start_evals:
                proc.send_signal(send)
                event = f"{signal.Signals(send).name} when the evaluation started"
                break
            time.sleep(0.002 if on_temp else 0.01)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    log.close()
    if event and on_temp:
        left = set(_temp_files(output)) - start_temps
        event += f" ({'temp file left behind: killed inside the write' if left else 'write had completed'})"
    return proc.returncode, text, event


def finished(output):
    return (Path(output) / "run_summary.json").is_file() and b'"finished"' in (Path(output) / "run_summary.json").read_bytes()


def compare_outputs(ref, other):
    """Names of tensors that differ between two finished outputs ([] when every one is equal)."""
    import torch

    from insightface_g2d.training.checkpoint import checkpoint_modules

    diffs = []
    names = sorted(p.name for p in Path(ref).glob("stage_*.pt")) + ["model.pt"]
    for name in names:
        a = torch.load(Path(ref) / name, map_location="cpu", weights_only=True)
        b = torch.load(Path(other) / name, map_location="cpu", weights_only=True)
        if name.startswith("stage_"):
            a, b = checkpoint_modules(a), checkpoint_modules(b)
            flat_a = {f"{m}.{k}": v for m, sd in a.items() for k, v in sd.items()}
            flat_b = {f"{m}.{k}": v for m, sd in b.items() for k, v in sd.items()}
        else:
            flat_a, flat_b = a, b
        if set(flat_a) != set(flat_b):
            diffs.append(f"{name}: different keys")
            continue
        diffs += [f"{name}:{k}" for k in flat_a if not torch.equal(flat_a[k], flat_b[k])]
    eval_a, eval_b = Path(ref) / "eval.json", Path(other) / "eval.json"
    if eval_a.is_file() or eval_b.is_file():
        import json

        if not (eval_a.is_file() and eval_b.is_file()):
            diffs.append("eval.json: missing in one output")
        elif json.loads(eval_a.read_text())["models"] != json.loads(eval_b.read_text())["models"]:
            diffs.append("eval.json: different figures")
    return diffs


def _marker(text, name):
    """The hook's own line in the child's output (tqdm may precede it on the same line), or None."""
    found = re.search(name + r"[^\n\r]*", text)
    return found.group(0) if found else None


def campaign(kills, seed, steps, workdir, log=print, previews=True, evaluate=True):
    import random

    rng = random.Random(seed)
    config = write_config(workdir, steps, previews=previews, evaluate=evaluate)
    ref = Path(workdir) / "reference"
    t0 = time.time()
    rc, text, _ = launch(config, ref)
    if rc != 0 or not finished(ref):
        raise RuntimeError(f"reference run failed (exit {rc}):\n{text[-3000:]}")
    log(f"reference run: {time.time() - t0:.1f} s")
    survived, events, rounds, diffs, leftovers = 0, [], 0, [], 0
    kinds = ["steps", "temp", "in-write", "before-rename", "steps", "sigterm", "sigint"]
    kinds += (["preview"] if previews else []) + (["eval"] if evaluate else [])
    saves_per_run = 4 * steps + 8  # upper bound of torch.save calls in one run
    while survived < kills:
        # one round: a fresh output, killed again and again until a run finishes, then compared
        rounds += 1
        out = Path(workdir) / f"killed_{rounds}"
        while not finished(out):
            kind = kinds[survived % len(kinds)] if survived < len(kinds) else rng.choice(kinds)
            if kind == "steps":
                rc, text, event = launch(config, out, after_steps=rng.randint(1, 2 * steps))
            elif kind == "temp":
                rc, text, event = launch(config, out, on_temp=True)
            elif kind == "preview":
                rc, text, event = launch(config, out, on_preview=True)
            elif kind == "eval":
                rc, text, event = launch(config, out, on_eval=True)
            elif kind == "in-write":
                rc, text, event = launch(config, out,
                                         env={"G2D_KILL_IN_WRITE": str(rng.randint(1, saves_per_run // 2))})
                event = _marker(text, "KILL-IN-WRITE")
            elif kind == "before-rename":
                rc, text, event = launch(config, out,
                                         env={"G2D_KILL_BEFORE_RENAME": str(rng.randint(1, saves_per_run // 2))})
                event = _marker(text, "KILL-BEFORE-RENAME")
            else:
                sig = signal.SIGTERM if kind == "sigterm" else signal.SIGINT
                rc, text, event = launch(config, out, after_steps=rng.randint(1, steps), send=sig)
                if event is not None:
                    if rc != 0:
                        raise RuntimeError(f"{sig.name}: exit code {rc}, expected 0:\n{text[-3000:]}")
                    if "Resume with the same command" not in text and not finished(out):
                        raise RuntimeError(f"{sig.name}: no resume instructions printed:\n{text[-3000:]}")
                    if "Resume with the same command" not in text:
                        event += " (arrived after the last step: the run finished instead)"
            if event is None:  # the run ended before the kill could land
                if rc != 0:
                    raise RuntimeError(f"run failed (exit {rc}):\n{text[-3000:]}")
                continue
            survived += 1
            events.append(event)
            log(f"round {rounds}, kill {survived}: {event} (exit {rc})")
        round_diffs = compare_outputs(ref, out)
        diffs += [f"round {rounds}: {d}" for d in round_diffs]
        leftovers += len(_temp_files(out))
        log(f"round {rounds} finished: weights {'EQUAL' if not round_diffs else 'DIFFERENT'}")
    return dict(kills=survived, rounds=rounds, events=events, diffs=diffs, temp_files_left=leftovers,
                seconds=round(time.time() - t0, 1), previews=previews, evaluate=evaluate)


def event_kind(event):
    """A kill event's kind, for the summary line."""
    for needle, kind in (("preview", "SIGKILL as a preview appeared"),
                         ("evaluation", "SIGKILL as the evaluation started"),
                         ("KILL-IN-WRITE", "SIGKILL inside torch.save"),
                         ("KILL-BEFORE-RENAME", "SIGKILL before a rename"),
                         ("temp file", "SIGKILL as a checkpoint temp file appeared")):
        if needle in event:
            return kind
    return event.split(" after")[0] + " after N steps"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="example:\n  python benchmarks/kill_resume.py --kills 20 --seed 0",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4, help="steps per stage")
    parser.add_argument("--workdir", default=None, help="keep outputs here (default: a temporary folder)")
    parser.add_argument("--no-previews", action="store_true", help="no inpainting preview every step")
    parser.add_argument("--no-eval", action="store_true", help="no evaluation at the end of each run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        result = campaign(args.kills, args.seed, args.steps, workdir, previews=not args.no_previews,
                          evaluate=not args.no_eval)
    kinds = {}
    for e in result["events"]:
        kinds[event_kind(e)] = kinds.get(event_kind(e), 0) + 1
    print(f"previews {'on (every step)' if result['previews'] else 'off'}, evaluation "
          f"{'on' if result['evaluate'] else 'off'}; kills by kind: "
          + "; ".join(f"{k}: {n}" for k, n in sorted(kinds.items())))
    print(f"kills survived: {result['kills']} in {result['rounds']} killed-and-resumed runs; final weights "
          f"{'EQUAL to' if not result['diffs'] else 'DIFFERENT from'} the uninterrupted run "
          f"({len(result['diffs'])} differing tensors); temp files left behind: {result['temp_files_left']}; "
          f"{result['seconds']} s")
    for d in result["diffs"][:10]:
        print("  differs:", d)
    return 1 if result["diffs"] else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_main(sys.argv[2:])
    sys.exit(main())
