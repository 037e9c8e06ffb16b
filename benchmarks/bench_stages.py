"""Training throughput (images/s) of every stage kind's step, on random batches (no data loading).

    python benchmarks/bench_stages.py                      # tiny (g2d_t) and default (g2d) sizes
    python benchmarks/bench_stages.py --network g2d_s --batch-size 64 --device cuda
    python benchmarks/bench_stages.py --network r50 --kinds arcface --batch-size 128 --device cuda --fp16

Each stage runs through the real StageTrainer (optimizers, AMP on CUDA when --fp16, DDP off) with a
randomly initialised teacher of --teacher (the inpaint stage backpropagates through it).
"""
import argparse
import time

import torch

from insightface_g2d.training.config import load_config, packaged_base_path
from insightface_g2d.devices import select_device
from insightface_g2d.training.distributed import Runtime
from insightface_g2d.training.loop import StageTrainer
from insightface_g2d.training.runner import build_models
from insightface_g2d.training.stages import build_stage, resolve_stage

KINDS = ("arcface", "inpaint", "reform", "classify", "finetune")
SIZES = {"tiny": ("g2d_t", 128, (32, 16, 8), (16, 32, 64)), "default": ("g2d", 512, None, None)}


def random_batch(n, num_classes, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, 3, 112, 112, generator=g) * 2 - 1
    alpha = torch.zeros(n, 1, 112, 112)
    alpha[:, :, 60:, 20:92] = 1.0
    masked = clean * (1 - alpha) + 0.3 * alpha
    batch = dict(masked=masked, clean=clean, alpha=alpha, label=torch.randint(0, num_classes, (n,), generator=g),
                 index=torch.arange(n), flipped=torch.zeros(n, dtype=torch.bool))
    return {k: v.to(device) for k, v in batch.items()}


def bench_stage(kind, network, dim, decoder, disc, teacher_net, batch_size, steps, warmup, rt, fp16, num_classes):
    from insightface_g2d import get_model
    from insightface_g2d.embedders.torch_network import TorchEmbedder

    base_network = network if network.startswith("g2d") else "g2d"  # r50 etc.: only as an arcface stage's network
    cfg = load_config(packaged_base_path(), [f"network={base_network!r}", f"embedding_size={dim}", f"fp16={fp16}"])
    entry = dict(name=f"bench_{kind}", kind=kind, steps=steps + warmup, batch_size=batch_size)
    if kind == "inpaint":
        entry.update(decoder_widths=decoder, disc_widths=disc)
    if kind == "arcface":
        entry.update(network=network)
    stage = build_stage(resolve_stage(entry, cfg, 0), cfg)
    models = build_models([stage], num_classes, 0).to(rt.device)
    teacher = grad_teacher = None
    use_targets, use_grad = stage.teacher_use()
    if use_targets or use_grad:
        net = get_model(teacher_net, num_features=dim)
        teacher = TorchEmbedder(net, rt.device, name=teacher_net, channels_last=False)
        grad_teacher = TorchEmbedder(net, rt.device, name=teacher_net, differentiable=True,
                                     channels_last=False)
    trainer = StageTrainer(stage, models, rt, steps + warmup, 0, teacher, grad_teacher)
    batch = random_batch(batch_size, num_classes, rt.device)
    for _ in range(warmup):
        trainer.train_step(batch)
    if rt.cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if rt.cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t) / steps
    return batch_size / seconds, seconds * 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", help="one network (default: g2d_t and g2d); a non-G2D one (r50) runs --kinds arcface")
    p.add_argument("--embedding-size", type=int, default=None)
    p.add_argument("--teacher", default="g2d_t", help="teacher network (random weights), default g2d_t")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--fp16", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--num-classes", type=int, default=1000)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = Runtime(select_device(args.device))
    if args.network:
        sizes = [(args.network, args.embedding_size or (128 if args.network == "g2d_t" else 512), None, None)]
        if args.network == "g2d_t":
            sizes = [SIZES["tiny"]]
    else:
        sizes = list(SIZES.values())
    rows = []
    for network, dim, decoder, disc in sizes:
        dim = args.embedding_size or dim
        for kind in args.kinds.split(","):
            ips, ms = bench_stage(kind, network, dim, decoder, disc, args.teacher, args.batch_size, args.steps,
                                  args.warmup, rt, args.fp16, args.num_classes)
            rows.append((network, dim, kind, ips, ms))
            print(f"{network} {kind}: {ips:.1f} img/s", flush=True)
    threads = torch.get_num_threads() if not rt.cuda else "-"
    print(f"\ndevice {rt.device}, torch threads {threads}, batch {args.batch_size}, teacher {args.teacher} "
          f"(random weights), {args.steps} timed steps after {args.warmup} warm-up\n")
    print("| network | emb | stage | images/s | ms/step |")
    print("|---|---:|---|---:|---:|")
    for network, dim, kind, ips, ms in rows:
        print(f"| {network} | {dim} | {kind} | {ips:.1f} | {ms:.0f} |")


if __name__ == "__main__":
    main()
