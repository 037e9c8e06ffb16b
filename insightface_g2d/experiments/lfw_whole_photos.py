"""LFW DevTest as whole photos for the end-to-end evaluation (`g2d-eval real-masks`).

The real-mask benchmark takes photos, not crops: the front end must find and place every face. This
writes LFW DevTest that way: out/clean is a link to the unmasked photos, out/masked/<path> each
DevTest photo with a mask drawn on the whole 250x250 photo from its true landmarks (seeded per path,
in the styles asked for: by default the two the students never train on), and the three pairs files
of `g2d-eval make-pairs`'s layout over DevTest's 1,000 pairs with balanced folds.
"""
import os
from pathlib import Path

from ..errors import DataError

HELD_OUT_STYLES = ("n95", "textured")


def write_whole_photo_pairs(root, out, styles=HELD_OUT_STYLES, seed=0, pairs_file="pairsDevTest.txt",
                            progress=True):
    """Masked whole photos and pairs files under `out` (see module doc); returns out."""
    from tqdm import tqdm

    from ..data.image_io import read_photo, write_image
    from ..faces.landmarks import LandmarkIndex
    from ..masks.synthesizer import MaskSynthesizer, rng_for
    from ..evaluation.pairs import read_pairs, resolve_paths
    from ..evaluation.report import write_text
    from ..evaluation.verification import balanced_fold_ids

    root, out = Path(root), Path(out)
    synth = MaskSynthesizer(styles=list(styles), size=112)  # unknown styles fail here, before any work
    photos = root / "lfw-deepfunneled"
    pairs = read_pairs(root / pairs_file)
    base, paths = resolve_paths(photos, pairs)
    index = LandmarkIndex(root / "landmarks5.tsv")
    out.mkdir(parents=True, exist_ok=True)
    link = out / "clean"
    if not link.exists():
        os.symlink(os.path.abspath(base), link)
    elif link.resolve() != base.resolve():
        raise DataError(f"{link} exists and is not a link to {base}; choose another --out")
    for rel in tqdm(sorted(set(paths)), desc="masking photos", unit="photo", disable=not progress):
        target = out / "masked" / rel
        if target.is_file():
            continue
        img = read_photo(base / rel)
        masked, _ = synth.apply_landmarks(img, index.require(base / rel, base), rng_for(seed, rel))
        write_image(target, masked, quality=95, within=out)
    folds = pairs.folds if pairs.folds is not None else balanced_fold_ids(pairs.issame, max(2, min(10, len(pairs) // 2)))
    kinds = {"clean_clean": ("clean", "clean"), "masked_clean": ("masked", "clean"),
             "masked_masked": ("masked", "masked")}
    for name, (first, second) in kinds.items():
        lines = [f"# LFW {pairs_file} as whole photos; masks: {', '.join(styles)}, seed {seed}"]
        for k, same in enumerate(pairs.issame):
            lines.append(f"{first}/{paths[2 * k]}\t{second}/{paths[2 * k + 1]}\t{int(same)}\t{int(folds[k])}")
        write_text(out / f"pairs_{name}.txt", "\n".join(lines) + "\n")
    return out
