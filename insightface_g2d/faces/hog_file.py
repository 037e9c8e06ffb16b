"""A check of a dlib HOG detector file (``masked_hog.svm`` of a front-end folder) before dlib reads
it: dlib's own loader trusts every size in the file, so a damaged or hostile one can make it
allocate gigabytes, print a C++ stack trace or raise errors of its own.

The layout, in dlib's portable encoding (backbones/dlib_format.py), as `object_detector<
scan_fhog_pyramid<pyramid_down<6>>>` writes it:

    object detector version (2), scanner version (1), feature extractor (0), stored feature images (0),
    cell size, padding, window width, window height, max pyramid levels, min pyramid layer width,
    height, nuclear-norm strength (float), feature dimensions (31 per cell of the padded window),
    box-overlap thresholds (2 floats), number of filters, then each filter: a -(dimensions + 1) x -1
    matrix of floats (the weights and the bias).
    dlib's Python detectors add a version (1) and the upsampling amount.
"""
import math

from ..backbones.dlib_format import DlibStream
from ..errors import CheckpointError, DataError

FHOG_CHANNELS = 31
MAX_WINDOW = 320    # pixels; 4x the 80 x 80 window of dlib's detector and the kit's masked filter
MAX_FILTERS = 20    # dlib's frontal detector has 5
MAX_FILE_BYTES = 16 << 20


def check_hog_file(path):
    """DataError naming `path` and what is wrong unless it is a dlib HOG detector with every size in
    bounds and every weight finite; returns the number of filters."""
    try:
        with open(path, "rb") as f:
            stream = DlibStream(f, name=f"HOG filter {path}")
            if stream.size > MAX_FILE_BYTES:
                raise DataError(f"HOG filter {path} is {stream.size} bytes, more than a detector holds "
                                f"({MAX_FILE_BYTES}); re-run g2d-data train-landmarks")
            return _walk(stream)
    except OSError as err:
        raise DataError(f"cannot read HOG filter {path}: {err.strerror or err}") from None
    except CheckpointError as err:  # the stream's wording speaks of model files: say what this is
        raise DataError(f"{str(err).split('; not the dlib model')[0]}; not a dlib HOG detector, or a damaged "
                        "one: re-run g2d-data train-landmarks") from None


def _walk(s):
    s.version({2})
    s.version({1})
    s.version({0})
    if s.integer() != 0:
        s.fail("stored feature images (a detector holds none)")
    cell, padding = _bounded(s, "cell size", 1, 32), _bounded(s, "padding", 0, 8)
    width, height = _bounded(s, "window width", cell, MAX_WINDOW), _bounded(s, "window height", cell, MAX_WINDOW)
    _bounded(s, "max pyramid levels", 1, 1000)
    _bounded(s, "min pyramid layer width", 1, 4096), _bounded(s, "min pyramid layer height", 1, 4096)
    _finite(s, "nuclear-norm strength")
    dims = FHOG_CHANNELS * (width // cell + 2 * padding) * (height // cell + 2 * padding)
    start = s.pos
    if s.integer() != dims:
        s.fail(f"feature dimensions other than the window's {dims}", at=start)
    _finite(s, "box-overlap threshold"), _finite(s, "box-overlap threshold")
    filters = _bounded(s, "number of filters", 1, MAX_FILTERS)
    for _ in range(filters):
        start = s.pos
        if (s.integer(), s.integer()) != (-(dims + 1), -1):
            s.fail(f"a filter that is not {dims + 1} weights", at=start)
        for _ in range(dims + 1):
            _finite(s, "filter weight")
    if not s.at_end():  # dlib's Python detectors: version 1, then the upsampling amount
        s.version({1})
        _bounded(s, "upsampling amount", 0, 8)
    if not s.at_end():
        s.fail("unexpected bytes after the detector")
    return filters


def _bounded(s, what, low, high):
    start = s.pos
    value = s.integer()
    if not low <= value <= high:
        s.fail(f"{what} {value} outside {low}..{high}", at=start)
    return value


def _finite(s, what):
    start = s.pos
    value = s.floating()
    if not math.isfinite(value):
        s.fail(f"{what} {value}", at=start)
    return value
