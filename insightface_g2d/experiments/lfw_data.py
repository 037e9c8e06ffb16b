"""Data of the real-face comparison: LFW DevTrain faces aligned to 112x112 and the dlib teacher cache."""
from pathlib import Path

from ..errors import DataError


def prepare_devtrain(root, out, people_file="peopleDevTrain.txt", progress=True):
    """`g2d-data align` of the people in `people_file` (LFW's peopleDevTrain.txt by default) from
    landmarks5.tsv: out/<name>/<image>.png, 112x112 on the ArcFace template. Faces already there are
    kept, so a rerun only adds what is missing. Returns (out, images, people)."""
    from ..faces.align_folder import align_folder
    from ..faces.photo_folders import read_identity_list

    root, out = Path(root), Path(out)
    people = Path(people_file) if Path(people_file).is_absolute() else root / people_file
    names = read_identity_list(people)  # align_folder refuses a listed identity without photos
    summary = align_folder(root / "lfw-deepfunneled", out, landmarks=root / "landmarks5.tsv",
                           include=names, workers=2, fmt="png", progress=progress)
    if summary["failed"]:
        raise DataError(f"{summary['failed']} LFW image(s) could not be aligned; see {summary['report']}")
    return out, summary["photos"], len(names)


def build_dlib_cache(devtrain, out, progress=True):
    """g2d-cache build --teacher-dlib over the aligned DevTrain folder (dlib's network in PyTorch;
    mirrored faces embedded too)."""
    from ..data.factory import build_face_dataset
    from ..embedders.factory import build_teacher
    from ..teachers import build_teacher_cache

    teacher = build_teacher({"dlib": True})
    return build_teacher_cache(teacher, build_face_dataset(str(devtrain)), str(out), batch_size=64,
                               progress=progress, flips="computed", dataset_spec=str(devtrain),
                               teacher_spec={"dlib": True})
