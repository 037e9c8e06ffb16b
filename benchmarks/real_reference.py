"""Eye centres of every face in a folder of real photos, found by dlib's CNN (MMOD) face detector and
its 68-point model: the reference that `bench_front_end.py --real-reference` scores finders against.

The reference comes from neither the kit's front end nor dlib's HOG path, so a finder is not
graded by its own output. dlib's CNN detector finds masked faces HOG misses (it is too slow to be
a default: about 14x HOG's time); the eye centres are the means of the 68-point model's six points
per eye. Photos larger than --max-side are shrunk for the detector (faces with 60 px between the
eyes stay well above its 80 px window). One TSV row per face, every face of a photo, so group
photos keep all their people: ``path x1 y1 x2 y2 source`` (left and right eye centre in photo
pixels, path relative to the folder, source ``cnn+68``). The shipped
benchmarks/data/real_masked_reference.tsv was made this way and then checked by eye where the
kit's front end missed it (bench_front_end.py says how).

    python benchmarks/real_reference.py /tmp/real_masked --out /tmp/real_masked_reference.tsv
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from insightface_g2d.faces.dlib_landmarks import _import_dlib  # noqa: E402
from insightface_g2d.data.image_io import IMAGE_EXTENSIONS, read_image_file  # noqa: E402
from insightface_g2d.dlib_models import dlib_model_file  # noqa: E402
from insightface_g2d.fileio import atomic_open  # noqa: E402


def eye_centres(shape):
    """dlib full_object_detection (68 points) -> [2, 2] left, right eye centre (image left first)."""
    pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0)])


def faces_in(img, cnn, predictor, dlib, max_side, upsample):
    """Eye centres [K, 2, 2] of every face dlib's CNN detector finds in a uint8 RGB photo."""
    scale = min(1.0, max_side / max(img.shape[:2]))
    small = img if scale >= 1.0 else cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                                               interpolation=cv2.INTER_AREA)
    out = []
    for det in cnn(small, upsample):
        r = det.rect
        shape = predictor(small, dlib.rectangle(r.left(), r.top(), r.right(), r.bottom()))
        out.append(eye_centres(shape) / scale)
    return np.asarray(out, np.float64).reshape(-1, 2, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python benchmarks/real_reference.py /tmp/real_masked "
                                 "--out /tmp/real_masked_reference.tsv")
    ap.add_argument("folder", help="a folder of photos (any layout)")
    ap.add_argument("--out", required=True, help="the reference TSV to write")
    ap.add_argument("--max-side", type=int, default=1024, help="shrink larger photos to this side first (default 1024)")
    ap.add_argument("--upsample", type=int, default=0, help="CNN detector upsampling (default 0: faces >= 80 px)")
    args = ap.parse_args()

    dlib = _import_dlib()
    cv2.setNumThreads(1)
    cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_file("mmod_human_face_detector.dat")))
    predictor = dlib.shape_predictor(str(dlib_model_file("shape_predictor_68_face_landmarks.dat")))
    folder = Path(args.folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    rows, photos, unreadable = [], 0, 0
    for path in tqdm(files, desc="reference faces", unit="photo", dynamic_ncols=True):
        try:
            img = read_image_file(path)
        except Exception:  # noqa: BLE001 - a broken file in someone's folder is skipped, as the benchmark does
            unreadable += 1
            continue
        photos += 1
        rel = path.relative_to(folder).as_posix()
        for eyes in faces_in(img, cnn, predictor, dlib, args.max_side, args.upsample):
            rows.append(f"{rel}\t" + "\t".join(f"{v:.1f}" for v in eyes.ravel()) + "\tcnn+68")
    with atomic_open(args.out, "w", encoding="utf-8") as f:
        f.write("path\tx1\ty1\tx2\ty2\tsource\n" + "".join(r + "\n" for r in rows))
    print(f"{len(rows)} faces in {photos} photos ({unreadable} unreadable) -> {args.out}")


if __name__ == "__main__":
    main()
