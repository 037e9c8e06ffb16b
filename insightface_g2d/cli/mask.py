"""`g2d-mask`: preview synthetic masks, or write masked copies of an image folder.

    g2d-mask preview --input lfw/lfw-deepfunneled --landmarks lfw/landmarks5.tsv --out grid.png
    g2d-mask apply --input faces112/ --aligned --out masked112/ --seed 0
"""
from pathlib import Path

import numpy as np

from ..data.image_io import IMAGE_EXTENSIONS, list_images, pick_images, read_photo, write_image
from ..faces.landmarks import LandmarkIndex
from ..errors import DataError
from .common import add_subcommand, exit_cli, make_parser, run_subcommand


def _aligned_or_error(img, path, size):
    if img.shape[:2] != (size, size):
        raise DataError(f"image {path} is {img.shape[1]}x{img.shape[0]}, not an aligned {size}x{size} crop: "
                        "give --landmarks TSV to align it")
    return img


# ------------------------------------------------------------------------------------------------
# preview

def _synthetic_faces(count, seed, size):
    from ..data.synthetic import SyntheticFaces

    ds = SyntheticFaces(num_identities=count, images_per_identity=1, seed=seed, size=size)
    return [np.asarray(ds[i][0], np.uint8) for i in range(count)]


def preview(args):
    from ..data.align import align_face
    from ..data.grids import compose_grid, label_grid
    from ..masks.synthesizer import MaskSynthesizer

    size = args.size
    if args.synthetic:
        faces = _synthetic_faces(args.faces, args.seed, size)
    elif args.input:
        index = LandmarkIndex(args.landmarks) if args.landmarks else None
        faces = []
        for path, root in pick_images(args.input, args.faces, args.seed):
            img = read_photo(path)
            if index is not None:
                faces.append(align_face(img, index.require(path, root), size=size,
                                        where=f"landmarks of {path} in {index.where}"))
            else:
                faces.append(_aligned_or_error(img, path, size))
    else:
        raise DataError("nothing to preview: give --input IMAGES_OR_FOLDERS (with --landmarks for "
                        "unaligned images) or --synthetic")
    faces = np.stack(faces)
    synth = MaskSynthesizer(styles=args.styles, size=size, positions=args.positions)
    rng = np.random.default_rng(args.seed)
    rows, names, column_positions = [faces], ["clean"], None
    if args.cycle_positions:  # one row per style; column j wears position j mod #positions
        column_positions = [synth.positions[j % len(synth.positions)] for j in range(len(faces))]
        for style in synth.styles:
            rows.append(synth.apply_batch(faces, rng, styles=style, positions=column_positions)[0])
            names.append(style)
    else:
        for style in synth.styles:
            for position in synth.positions:
                rows.append(synth.apply_batch(faces, rng, styles=style, positions=position)[0])
                names.append(f"{style}/{position}")
    cell = args.cell or size
    grid = compose_grid(rows, cell=cell)
    if args.labels:
        grid = label_grid(grid, names, cell, column_positions)
    out = write_image(args.out, grid, colors=args.colors)
    print(f"wrote {out} ({len(rows) - 1} mask rows x {len(faces)} faces)")
    return 0


# ------------------------------------------------------------------------------------------------
# apply

def apply(args):
    from tqdm import tqdm

    from ..data.align import align_face
    from ..masks.synthesizer import MaskSynthesizer, rng_for

    src, dst = Path(args.input), Path(args.out)
    files = list_images(src)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {src}")
    if dst.resolve() == src.resolve() or (args.alpha_out and Path(args.alpha_out).resolve() == src.resolve()):
        raise DataError(f"output folder {dst} is the input folder: choose another --out")
    index = LandmarkIndex(args.landmarks) if args.landmarks else None
    if index is not None:
        missing = [f for f in files if index.find(f, src) is None]
        if missing:
            raise DataError(f"{len(missing)} of {len(files)} images have no landmarks in {index.where}, "
                            f"first: {missing[0].relative_to(src).as_posix()}")
    synth = MaskSynthesizer(styles=args.styles, size=args.size, positions=args.positions)
    count = 0
    for path in tqdm(files, desc="masking", unit="img", disable=args.quiet):
        rel = path.relative_to(src).as_posix()
        img = read_photo(path)
        rng = rng_for(args.seed, rel)
        if index is None:
            masked, alpha = synth.apply(_aligned_or_error(img, path, args.size), rng)
        elif args.crop:
            face = align_face(img, index.require(path, src), size=args.size,
                              where=f"landmarks of {path} in {index.where}")
            masked, alpha = synth.apply(face, rng)
        else:
            masked, alpha = synth.apply_landmarks(img, index.require(path, src), rng,
                                                  where=f"landmarks of {path} in {index.where}")
        write_image(dst / rel, masked, args.quality, within=dst)
        if args.alpha_out:
            a8 = np.rint(alpha * 255.0).astype(np.uint8)
            write_image((Path(args.alpha_out) / rel).with_suffix(".png"), a8, within=args.alpha_out,
                        option="--alpha-out")
        count += 1
    print(f"masked {count} images -> {dst}" + (f" (alpha maps -> {args.alpha_out})" if args.alpha_out else ""))
    return 0


# ------------------------------------------------------------------------------------------------

def _add_mask_options(p):
    from ..masks.styles import MASK_POSITIONS, MASK_STYLES, default_styles

    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--styles", nargs="+", choices=tuple(MASK_STYLES), default=None, metavar="STYLE",
                   help=f"mask styles to draw from (default: {' '.join(default_styles())})")
    p.add_argument("--positions", nargs="+", choices=MASK_POSITIONS, default=list(MASK_POSITIONS),
                   metavar="POS", help=f"wear positions (default all: {' '.join(MASK_POSITIONS)})")
    p.add_argument("--size", type=int, default=112, help="aligned crop size (default 112)")


def build_parser():
    parser = make_parser(
        "g2d-mask",
        "Synthetic face masks: preview them on faces, or write masked copies of an image folder.",
        "g2d-mask preview --input lfw/lfw-deepfunneled --landmarks lfw/landmarks5.tsv --out grid.png\n"
        "  g2d-mask apply --input faces112/ --aligned --out masked112/ --alpha-out alpha112/",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = add_subcommand(sub, "preview", "grid of masked faces: rows = style x position, columns = faces",
                       "g2d-mask preview --input lfw/lfw-deepfunneled --landmarks lfw/landmarks5.tsv --out grid.png\n"
                       "  g2d-mask preview --synthetic --faces 6 --styles surgical n95 --out synthetic_grid.png",
                       description="Write a grid image: first row the clean faces, then one row per "
                       "(style, position). Folders of identity sub-folders give one face per identity.")
    p.add_argument("--input", nargs="+", metavar="PATH", help="image files and/or folders")
    p.add_argument("--landmarks", metavar="TSV", help="five-point landmarks (path x1 y1 ... x5 y5); "
                   "faces are aligned with them. Without it, images must be aligned crops")
    p.add_argument("--synthetic", action="store_true",
                   help="use synthetic faces (insightface_g2d.data.synthetic) instead of --input")
    p.add_argument("--out", required=True, metavar="PNG", help="output image")
    p.add_argument("--faces", type=int, default=8, help="number of faces (columns), default 8")
    p.add_argument("--cell", type=int, default=0, help="resize each face to this many pixels in the grid")
    p.add_argument("--colors", type=int, default=0,
                   help="save as a palette PNG with this many colours (smaller file; needs Pillow)")
    p.add_argument("--cycle-positions", action="store_true",
                   help="compact grid: one row per style, face j wears position j mod #positions")
    p.add_argument("--no-labels", dest="labels", action="store_false", help="no style/position labels")
    _add_mask_options(p)
    p.set_defaults(func=preview)

    p = add_subcommand(sub, "apply", "write masked copies of a folder, keeping its tree",
                       "g2d-mask apply --input faces112/ --aligned --out masked112/ --alpha-out alpha112/\n"
                       "  g2d-mask apply --input lfw/lfw-deepfunneled --landmarks lfw/landmarks5.tsv --crop "
                       "--out lfw_masked112/",
                       description="Mask every image under --input and write it to the same relative "
                       "path under --out. Each image's mask is drawn from (seed, relative path), so "
                       "results do not depend on the other files in the folder.")
    p.add_argument("--input", required=True, metavar="DIR", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--landmarks", metavar="TSV",
                      help="five-point landmarks of unaligned images (paths relative to --input); the "
                      "mask is warped onto the full image")
    mode.add_argument("--aligned", action="store_true", help="inputs are aligned --size crops")
    p.add_argument("--crop", action="store_true",
                   help="with --landmarks: write aligned --size crops instead of full images")
    p.add_argument("--alpha-out", metavar="DIR", help="also write alpha maps (8-bit PNG) here")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of written .jpg files (default 95)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_mask_options(p)
    p.set_defaults(func=apply)
    return parser


def _check_options(parser, args):
    if getattr(args, "crop", False) and not args.landmarks:
        parser.error("--crop needs --landmarks")


def main(argv=None):
    return run_subcommand(build_parser(), argv, check=_check_options)


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()
