"""`g2d-info`: build networks and show what they are (shapes, parameters, FLOPs, a training step)."""
import time

import torch

from ..backbones import build_discriminator, build_inpainter, get_model, list_models
from ..backbones.flops import count_macs, count_params
from .common import exit_cli, make_parser


def describe(name, num_features=512):
    model = get_model(name, num_features=num_features)
    return dict(name=name, params=count_params(model), gmacs=count_macs(model) / 1e9)


def main(argv=None):
    parser = make_parser(
        "g2d-info",
        "Build G2D and a teacher, run one forward/backward step on random faces, print shapes, "
        "parameter counts and FLOPs.",
        "g2d-info --network g2d --teacher r50 --batch-size 4",
    )
    parser.add_argument("--network", default="g2d", choices=list_models())
    parser.add_argument("--teacher", default="r50", choices=list_models())
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--all", action="store_true", help="also print the table for every known network")
    args = parser.parse_args(argv)
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2 (BatchNorm needs two samples in training mode)")

    torch.manual_seed(0)
    g2d = get_model(args.network)
    decoder = build_inpainter(args.network if args.network.startswith("g2d") else "g2d")
    disc = build_discriminator()
    teacher = get_model(args.teacher).eval()
    faces = torch.rand(args.batch_size, 3, 112, 112) * 2 - 1

    start = time.perf_counter()
    desc = g2d.encode(faces)
    emb = g2d.reform(desc)
    restored = decoder(desc) if g2d.__class__.__name__ == "G2DBackbone" else None
    with torch.no_grad():
        target = teacher(faces)
    loss = 1 - torch.nn.functional.cosine_similarity(emb, target).mean()
    if restored is not None:
        loss = loss + (restored - faces).abs().mean() - disc(restored).mean()
    loss.backward()
    elapsed = time.perf_counter() - start

    print(f"input            {tuple(faces.shape)}")
    if restored is not None:
        print(f"descriptor       {tuple(desc.shape)}")
        print(f"restored face    {tuple(restored.shape)}")
    print(f"identity vector  {tuple(emb.shape)}")
    print(f"teacher vector   {tuple(target.shape)}")
    print(f"loss             {loss.item():.4f} (forward+backward {elapsed:.2f} s on CPU)")
    rows = list_models() if args.all else [args.network, args.teacher]
    print("\n| network | params (M) | GMACs |\n|---|---:|---:|")
    for name in rows:
        d = describe(name)
        print(f"| {name} | {d['params'] / 1e6:.2f} | {d['gmacs']:.2f} |")
    return 0


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
