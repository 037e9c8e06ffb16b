"""dlib's ResNet face recognizer: our PyTorch network against dlib itself (dlib-bin), same faces,
same run, on one CPU core, rounds alternated so both see the same machine load.

Both embed the same 150 x 150 dlib chips (made once, outside the timing): dlib through
`compute_face_descriptor` (one face at a time: that is how it runs), the PyTorch network in batches
of --batch-size. Prints faces/s per core and the ratio, and the largest descriptor difference.
With LFW (--lfw or G2D_LFW_ROOT) the chips are real aligned faces, else random pixels.

    python benchmarks/bench_dlib_resnet.py --lfw ../shared/data/lfw
    python benchmarks/bench_dlib_resnet.py --faces 128 --rounds 5 --batch-size 32
"""
import argparse
import os
import time

import numpy as np
import torch


def lfw_chips(root, count):
    from insightface_g2d.data.align import align_face, read_landmarks_tsv
    from insightface_g2d.data.image_io import read_image_file
    from insightface_g2d.embedders.dlib_resnet import crops_to_chips

    marks = read_landmarks_tsv(os.path.join(root, "landmarks5.tsv"))
    keys = sorted(marks)[:: max(1, len(marks) // count)][:count]
    crops = [align_face(read_image_file(os.path.join(root, "lfw-deepfunneled", k)), marks[k]) for k in keys]
    return crops_to_chips(np.stack(crops))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=96, help="faces embedded per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, engines alternated; the best is reported")
    parser.add_argument("--batch-size", type=int, default=32, help="PyTorch batch size")
    parser.add_argument("--lfw", default=os.environ.get("G2D_LFW_ROOT"), help="LFW folder (real faces)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from insightface_g2d.backbones.dlib_resnet import load_dlib_resnet
    from insightface_g2d.embedders.dlib_resnet import DlibBinEmbedder

    if args.lfw:
        chips = lfw_chips(args.lfw, args.faces)
    else:
        chips = np.random.default_rng(0).integers(0, 256, (args.faces, 150, 150, 3), dtype=np.uint8)
    tensors = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 127.5 - 1
    net = load_dlib_resnet().eval()
    dlib_bin = DlibBinEmbedder()

    def run_torch():
        with torch.no_grad():
            return torch.cat([net(tensors[i:i + args.batch_size]) for i in range(0, len(tensors), args.batch_size)])

    def run_dlib():
        return dlib_bin.embed_chips(chips)

    run_torch(), run_dlib()  # warm-up
    best = {"torch": float("inf"), "dlib": float("inf")}
    for _ in range(args.rounds):
        for name, fn in (("torch", run_torch), ("dlib", run_dlib)):
            start = time.perf_counter()
            out = fn()
            best[name] = min(best[name], time.perf_counter() - start)
            if name == "torch":
                ours = out.numpy()
            else:
                ref = out
    rate = {k: len(chips) / v for k, v in best.items()}
    print(f"{len(chips)} {'LFW' if args.lfw else 'random'} chips, one CPU thread each, best of {args.rounds} rounds")
    print("| engine | faces/s per core | ratio |")
    print("|---|---:|---:|")
    print(f"| dlib-bin compute_face_descriptor | {rate['dlib']:.1f} | 1.00x |")
    print(f"| PyTorch DlibResNet, batch {args.batch_size} | {rate['torch']:.1f} | {rate['torch'] / rate['dlib']:.2f}x |")
    print(f"largest descriptor difference: {np.abs(ours - ref).max():.2e}")


if __name__ == "__main__":
    main()
