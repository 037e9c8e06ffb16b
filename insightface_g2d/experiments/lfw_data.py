"""Data of the real-face comparison: LFW DevTrain faces aligned to 112x112 and the dlib teacher cache."""
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def prepare_devtrain(root, out, people_file="peopleDevTrain.txt", workers=2, progress=True):
    """Align every image of the people in `people_file` onto the ArcFace template (landmarks5.tsv)
    as out/<name>/<image>.png. Images already there are kept (a rerun only adds what is missing;
    each file is written to a temporary name and renamed). Returns (out, images, people)."""
    from tqdm import tqdm

    from ..data.align import align_face, read_landmarks_tsv
    from ..data.image_io import read_image_file
    from ..fileio import atomic_open
    from .lfw import read_people

    root, out = Path(root), Path(out)
    people = set(read_people(people_file if Path(people_file).is_absolute() else root / people_file))
    landmarks = read_landmarks_tsv(root / "landmarks5.tsv")
    items = sorted(k for k in landmarks if k.split("/")[0] in people)
    todo = [k for k in items if not (out / (os.path.splitext(k)[0] + ".png")).is_file()]

    def align(rel):
        face = align_face(read_image_file(root / "lfw-deepfunneled" / rel), landmarks[rel])
        ok, png = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        with atomic_open(out / (os.path.splitext(rel)[0] + ".png"), "wb") as f:
            f.write(png.tobytes())

    if todo:
        with ThreadPoolExecutor(workers) as pool:
            list(tqdm(pool.map(align, todo), total=len(todo), desc="aligning DevTrain", unit="img",
                      disable=not progress))
    return out, len(items), len({k.split("/")[0] for k in items})


def build_dlib_cache(devtrain, out, progress=True):
    """g2d-cache build --teacher-dlib --flips reuse over the aligned DevTrain folder."""
    from ..data.factory import build_face_dataset
    from ..teachers import build_teacher, build_teacher_cache

    teacher = build_teacher({"dlib": True, "workers": os.cpu_count() or 1})
    return build_teacher_cache(teacher, build_face_dataset(str(devtrain)), str(out), batch_size=64,
                               progress=progress, flips="reused-clean", dataset_spec=str(devtrain),
                               teacher_spec={"dlib": True})


def chip_similarity(images):
    """Mean cosine between dlib embeddings of faces and of their mirror images (checks that reusing
    the clean embedding for a mirrored face loses little)."""
    from ..teachers.dlib_teacher import DlibFaceRecognizer

    rec = DlibFaceRecognizer()
    a = rec.embed_crops(np.asarray(images))
    b = rec.embed_crops(np.ascontiguousarray(np.asarray(images)[:, :, ::-1]))
    a, b = a - a.mean(0), b - b.mean(0)
    return float((a * b).sum(1).mean() / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).mean())
