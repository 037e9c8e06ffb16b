"""Data of the real-face comparison: LFW DevTrain faces aligned to 112x112 and the dlib teacher cache."""
import os
from pathlib import Path

import numpy as np

from ..errors import DataError


def prepare_devtrain(root, out, people_file="peopleDevTrain.txt", workers=2, progress=True):
    """`g2d-data align` of the people in `people_file` (LFW's peopleDevTrain.txt by default) from
    landmarks5.tsv: out/<name>/<image>.png, 112x112 on the ArcFace template. Faces already there are
    kept, so a rerun only adds what is missing. Returns (out, images, people)."""
    from ..data.prepare import align_folder, read_identity_list

    root, out = Path(root), Path(out)
    people = Path(people_file) if Path(people_file).is_absolute() else root / people_file
    summary = align_folder(root / "lfw-deepfunneled", out, landmarks=root / "landmarks5.tsv",
                           include=read_identity_list(people), workers=workers, fmt="png", progress=progress)
    if summary["failed"]:
        raise DataError(f"{summary['failed']} LFW image(s) could not be aligned; see {summary['report']}")
    return out, summary["photos"], len({rel.split("/")[0] for rel in _relative_images(out)})


def _relative_images(out):
    return [f"{p.parent.name}/{p.name}" for p in Path(out).glob("*/*.png")]


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
