"""The registry of face finders (photo -> five landmarks): one module per finder, one line each in
``FACE_FINDERS``. Every command that finds faces (`g2d-data align`, `check-landmarks`,
`g2d-eval pairs --detector`) builds its finder here from a ``--detector`` value:

    g2d              the kit's masked-face front end (default): dlib's HOG + the kit's masked-face
                     HOG filter, the kit's landmark network (g2d_front_end.py)
    g2d:FOLDER       the same with the files `g2d-data train-landmarks --out FOLDER` wrote
    dlib             dlib's HOG detector + 68-point model (dlib_landmarks.py); --cnn-fallback adds
                     dlib's CNN detector where HOG finds nothing
    PATH.onnx        an insightface SCRFD detector (scrfd_landmarks.py)

A spec (``finder_spec``) is a picklable (name, options) pair, so worker processes build their own.
"""
import os
from dataclasses import dataclass

from ..errors import DataError

DEFAULT_FINDER = "g2d"


def _g2d(value, o):
    from .g2d_front_end import G2DFrontEnd

    return G2DFrontEnd(weights=value, pick=o["pick"], upsample=o["upsample"], refit=o.get("refit", True),
                       assume_cropped=o.get("assume_cropped", False))


def _dlib(value, o):
    from .dlib_landmarks import DlibLandmarker

    return DlibLandmarker(upsample=o["upsample"], pick=o["pick"], cnn_fallback=o["cnn_fallback"])


def _scrfd(value, o):
    from .scrfd_landmarks import ScrfdLandmarker

    return ScrfdLandmarker(value, det_size=o["det_size"], pick=o["pick"])


@dataclass(frozen=True)
class FinderType:
    """build(value, options) -> a FaceFinder; miss_hint: what to try when faces were not found
    (None: nothing to suggest)."""

    build: object
    miss_hint: object = None


FACE_FINDERS = {
    "g2d": FinderType(_g2d, lambda o: None if o["upsample"] >= 2 else
                      "faces under about 40 px wide are found with --upsample 2"),
    "dlib": FinderType(_dlib, lambda o: "the default --detector g2d finds masked faces" + (
        "" if o["cnn_fallback"] else ", and --cnn-fallback adds dlib's (slow) CNN detector")),
    "scrfd": FinderType(_scrfd, lambda o: "try --detector g2d (the default), or a larger --det-size for small faces"),
}


def finder_spec(detector=DEFAULT_FINDER, pick="largest", upsample=1, cnn_fallback=False, det_size=640, refit=True,
                assume_cropped=False):
    """(name, value, options) for a --detector value: "g2d", "g2d:FOLDER", "dlib" or an SCRFD .onnx path.

    refit, assume_cropped: the g2d front end's (``G2DFrontEnd``); assume_cropped needs g2d."""
    detector = DEFAULT_FINDER if detector is None else str(detector)
    options = {"pick": pick, "upsample": int(upsample), "cnn_fallback": bool(cnn_fallback), "det_size": int(det_size),
               "refit": bool(refit), "assume_cropped": bool(assume_cropped)}
    if assume_cropped and detector.partition(":")[0] != "g2d":
        raise DataError(f"--assume-cropped works with the g2d front end (--detector g2d), not {detector!r}")
    if detector.lower().endswith(".onnx"):
        return ("scrfd", os.path.abspath(detector), options)
    name, _, value = detector.partition(":")
    if name in FACE_FINDERS and name != "scrfd":
        if name == "dlib" and value:
            raise DataError(f"--detector {detector!r}: dlib takes no value; use 'dlib'")
        return (name, os.path.abspath(value) if value else None, options)
    raise DataError(f"unknown detector {detector!r}: use 'g2d' (the default, masked faces; needs the [dlib] extra), "
                    "'g2d:FOLDER' (a front end from g2d-data train-landmarks), 'dlib' (HOG + 68 points, the [dlib] "
                    "extra) or the path of an SCRFD det_*.onnx from an insightface model pack")


def build_finder(spec):
    """The FaceFinder of a finder_spec."""
    name, value, options = spec
    return FACE_FINDERS[name].build(value, options)


def miss_hint(spec):
    """A sentence on what to try when this finder missed faces, or None."""
    name, _, options = spec
    hint = FACE_FINDERS[name].miss_hint
    return hint(options) if hint is not None else None
