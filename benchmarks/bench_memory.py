"""Long-run memory: resident memory over thousands of training steps of every stage, on CPU.

    python benchmarks/bench_memory.py --steps 2000          # ~30 min on one busy CPU core
    python benchmarks/bench_memory.py --steps 200 --quick   # a smoke run

Trains the tiny G2D (g2d_t, 32-d, batch 8) on 200 synthetic faces with the real runner
(insightface_g2d.training.run_training): an arcface baseline (the teacher), then inpaint,
reform and classify, each for --steps steps, checkpointing every 500 steps as a real run does.
Resident memory (psutil when installed, else VmRSS from /proc/self/status) is sampled at the
first step of each stage, at the end of its first epoch, every --every steps, and at its last
step. Growth after the first epoch is what a leak looks like (the first epoch fills caches:
allocator pools, the mask template bank, lazily built modules); it is reported per stage and
per 1000 steps. Exit code 1 when a stage grows by more than --limit MiB after its first epoch.
"""
import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("kill_resume", HERE / "kill_resume.py")
_kill_resume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_kill_resume)


def config_text(steps):
    """kill_resume.py's tiny 4-stage config with this benchmark's values: 200 faces, checkpoints
    every 500 steps, adamw at 1e-3 for reform and classify, no per-step logging."""
    return _kill_resume.tiny_config_text(
        steps, seed=1, frequent=1000000, rec="synthetic:ids=20,per_id=10,seed=5", inpaint_lr="1e-4",
        student_options=', batch_size=8, optimizer="adamw", lr=1e-3', checkpoint_every=500,
        preview_every=1000000)


def rss_mib():
    """Resident set size of this process in MiB."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read resident memory (no psutil, no /proc)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="example:\n  python benchmarks/bench_memory.py --steps 2000",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="steps per stage")
    parser.add_argument("--every", type=int, default=250, help="sample memory every N steps")
    parser.add_argument("--limit", type=float, default=50.0, help="allowed growth after the first epoch, MiB")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the samples here")
    parser.add_argument("--quick", action="store_true", help="no checks, just a smoke run")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from insightface_g2d.training import load_config, run_training

    samples = {}  # stage -> list of (step, rss)
    marks = {}  # stage -> dict(start, epoch1, end)
    t_stage = {}

    def on_step(run, step):
        name = run.stage.name
        rows = samples.setdefault(name, [])
        m = marks.setdefault(name, {"batches_per_epoch": run.batches_per_epoch,
                                    "batch": int(run.stage.spec.batch_size)})
        if step == 1:
            t_stage[name] = time.time()
        if step == 1 or step == run.batches_per_epoch or step % args.every == 0 or step == run.total_steps:
            rss = rss_mib()
            rows.append((step, round(rss, 1)))
            if step == 1:
                m["start"] = rss
            if step == run.batches_per_epoch:
                m["epoch1"] = rss
            if step == run.total_steps:
                m["end"] = rss
                m["seconds"] = time.time() - t_stage[name]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_memory.py"
        path.write_text(config_text(args.steps))
        cfg = load_config(path)
        rss0 = rss_mib()
        t0 = time.time()
        run_training(cfg, output=str(Path(tmp) / "out"), device="cpu", evaluate=False, on_step=on_step)
        total = time.time() - t0

    print(f"\nprocess RSS before training: {rss0:.1f} MiB; {args.steps} steps per stage, "
          f"{args.threads} thread(s), {total / 60:.1f} min")
    print(f"{'stage':<10} {'batch':>5} {'steps':>6} {'s/step':>7} {'start':>8} {'epoch 1':>8} {'end':>8} "
          f"{'drift':>8} {'per 1k':>8}   (MiB; drift = end - after epoch 1)")
    worst = 0.0
    for name, m in marks.items():
        drift = m["end"] - m["epoch1"]
        per_k = drift / max(args.steps - m["batches_per_epoch"], 1) * 1000
        worst = max(worst, drift)
        print(f"{name:<10} {m['batch']:>5} {args.steps:>6} {m['seconds'] / args.steps:>7.3f} {m['start']:>8.1f} {m['epoch1']:>8.1f} "
              f"{m['end']:>8.1f} {drift:>+8.1f} {per_k:>+8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "marks": marks, "rss_before": rss0, "steps": args.steps}, f, indent=1)
    if not args.quick and worst > args.limit:
        print(f"FAIL: a stage grew by {worst:.1f} MiB after its first epoch (limit {args.limit} MiB)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
