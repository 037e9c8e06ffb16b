"""Decision thresholds measured on evaluation pairs, written beside a model as JSON.

Units: a pair's score is the cosine similarity of its two L2-normalised embeddings (the face's
embedding plus its mirror image's when flip is on, as in evaluation), in [-1, 1]; a pair is
"same person" when score >= threshold. (Accuracy in `verification.py` uses the squared distance
of the same normalised vectors, d = 2 - 2 cos, "same" when d < threshold.)

Thresholds, per measured set (target x protocol):
  far=F          the lowest threshold that lets at most k = floor(F x impostor pairs) impostor
                 pairs through: just above the (k+1)-th highest impostor score. Written only when
                 F x impostor pairs >= 1 (LFW's 3,000 impostor pairs measure 1e-3, not 1e-4).
  best-accuracy  the threshold with the most correct decisions over all pairs (no folds: it is
                 where the pairs were measured), midway between the two scores it separates.
Each entry also holds the FAR and TAR measured at its threshold.

A bare name ("far=1e-3") is read from the set measured masked-clean (a masked probe against a clean
photo: what the recognizer is used for), else clean; "clean:far=1e-3" names the protocol.

File (`THRESHOLDS_FORMAT`): {"format", "units", "rule", "model", "default", "sets": {"TARGET/PROTOCOL":
{"target", "protocol", "num_pairs", "num_genuine", "num_impostor", "flip", "thresholds": {name: {...}}}}}.
"""
import json
import math
import os

import numpy as np

from ..errors import ConfigError, DataError
from ..fileio import write_errors

THRESHOLDS_FORMAT = "insightface_g2d thresholds v1"
UNITS = "cosine similarity of L2-normalised embeddings, -1..1"
RULE = "same person when score >= threshold"
THRESHOLD_FARS = (1e-2, 1e-3, 1e-4)
BEST_ACCURACY = "best-accuracy"
PREFERRED_NAME = "far=1e-3"
PREFERRED_PROTOCOLS = ("masked-clean", "clean")  # the set a bare name is read from, first found


def far_name(far):
    """1e-3 -> "far=1e-3"."""
    mantissa, exponent = f"{float(far):.0e}".split("e")
    return f"far={mantissa}e{int(exponent)}"


def threshold_at_far(scores, issame, far):
    """{threshold, far, tar} at false accept rate `far` (see the module doc), or None when the set
    has fewer than 1/far impostor pairs."""
    scores, issame = _checked(scores, issame)
    impostor = np.sort(scores[~issame])[::-1]
    if len(impostor) * far < 1:
        return None
    k = int(math.floor(len(impostor) * far + 1e-9))
    threshold = float(np.nextafter(impostor[k], np.inf)) if k < len(impostor) else float(impostor[-1])
    return _rates(scores, issame, threshold)


def best_accuracy_threshold(scores, issame):
    """{threshold, accuracy, far, tar}: the threshold with the most correct decisions (the first,
    lowest, on ties), midway between the scores it separates."""
    scores, issame = _checked(scores, issame)
    distinct = np.unique(scores)
    # candidate i accepts the scores >= distinct[i]; one more candidate accepts nothing
    genuine_below = np.searchsorted(np.sort(scores[issame]), distinct, side="left")
    impostor_below = np.searchsorted(np.sort(scores[~issame]), distinct, side="left")
    correct = np.r_[(issame.sum() - genuine_below) + impostor_below, (~issame).sum()]
    best = int(np.argmax(correct))
    if best == 0:
        threshold = float(distinct[0])
    elif best == len(distinct):
        threshold = float(np.nextafter(distinct[-1], np.inf))
    else:
        threshold = float((distinct[best - 1] + distinct[best]) / 2)
    out = _rates(scores, issame, threshold)
    out["accuracy"] = float(correct[best] / len(scores))
    return out


def _rates(scores, issame, threshold):
    accept = scores >= threshold
    n_gen, n_imp = int(issame.sum()), int((~issame).sum())
    return {"threshold": threshold,
            "far": float(accept[~issame].sum() / n_imp) if n_imp else float("nan"),
            "tar": float(accept[issame].sum() / n_gen) if n_gen else float("nan")}


def _checked(scores, issame):
    scores = np.asarray(scores, np.float64).reshape(-1)
    issame = np.asarray(issame, bool).reshape(-1)
    if len(scores) != len(issame) or not len(scores):
        raise DataError(f"thresholds need one label per score: got {len(scores)} scores, {len(issame)} labels")
    if not np.isfinite(scores).all():
        raise DataError("pair scores contain NaN or inf; cannot measure thresholds")
    return scores, issame


def measure_thresholds(scores, issame, fars=THRESHOLD_FARS):
    """{name: {threshold, far, tar[, accuracy]}}: far=F for each measurable F, and best-accuracy."""
    out = {}
    for far in fars:
        found = threshold_at_far(scores, issame, far)
        if found is not None:
            out[far_name(far)] = found
    out[BEST_ACCURACY] = best_accuracy_threshold(scores, issame)
    return out


def measured_set(scores, issame, target, protocol, flip=True, fars=THRESHOLD_FARS):
    """One entry of a thresholds file's "sets": the thresholds and what they were measured on."""
    scores, issame = _checked(scores, issame)
    return {"target": str(target), "protocol": str(protocol), "num_pairs": int(len(issame)),
            "num_genuine": int(issame.sum()), "num_impostor": int((~issame).sum()), "flip": bool(flip),
            "thresholds": measure_thresholds(scores, issame, fars)}


def thresholds_document(sets, model=None):
    """A thresholds file's content from measured_set entries. Its default: far=1e-3 when the set a
    bare name is read from measured it, else far=1e-2, else best-accuracy."""
    sets = list(sets)
    first = min(sets, key=lambda s: _protocol_rank(s["protocol"]))["thresholds"] if sets else {}
    default = next((n for n in (PREFERRED_NAME, far_name(1e-2)) if n in first), BEST_ACCURACY)
    return {"format": THRESHOLDS_FORMAT, "units": UNITS, "rule": RULE, "model": None if model is None else str(model),
            "default": default, "sets": {f"{s['target']}/{s['protocol']}": s for s in sets}}


def thresholds_path(model_path):
    """Where the thresholds of a model file live: <folder>/<stem>.thresholds.json beside it
    (model.pt -> model.thresholds.json); for a run folder, <folder>/thresholds.json."""
    model_path = os.fspath(model_path)
    if os.path.isdir(model_path):
        return os.path.join(model_path, "thresholds.json")
    stem = os.path.splitext(os.path.basename(model_path))[0]
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), f"{stem}.thresholds.json")


def model_file_of(spec):
    """The file a model spec loads its weights from (a checkpoint, an .onnx), or None (dlib's
    installed file, objects, specs without a file: no thresholds are written beside those)."""
    from ..embedders.factory import parse_spec

    if not isinstance(spec, (str, os.PathLike, dict)):
        return None
    try:
        spec = parse_spec(spec)
    except ConfigError:
        return None
    for key in ("checkpoint", "onnx"):
        value = spec.get(key)
        if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
            if "site-packages" in os.path.abspath(value):  # an installed file (dlib's): not ours to write beside
                return None
            return os.fspath(value)
    return None


def write_thresholds(path, document):
    """Write a thresholds document atomically (NaN -> null); returns the path."""
    from .report import write_json

    with write_errors(path, option="thresholds file"):
        return write_json(path, document)


def read_thresholds(path):
    """A thresholds document, checked; DataError (one line) when the file is not one."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise DataError(f"thresholds file {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot read thresholds file {path}: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != THRESHOLDS_FORMAT or not isinstance(doc.get("sets"), dict):
        raise DataError(f"{path} is not a thresholds file of this kit (format {THRESHOLDS_FORMAT!r}); write one with "
                        "g2d-eval pairs --write-thresholds or g2d-eval compare")
    return doc


def pick_threshold(document, name=None):
    """(threshold, description) for `name` ("far=1e-3", "best-accuracy", or "PROTOCOL:NAME" /
    "TARGET/PROTOCOL:NAME" to choose the set). A name without a set is read from the first set
    measured masked-clean, else clean, else the first set. Default name: the document's default."""
    name = str(name or document.get("default") or PREFERRED_NAME)
    where, _, short = name.rpartition(":")
    short = _canonical(short)
    sets = document["sets"]
    if where:
        keys = [k for k in sets if k == where or sets[k].get("protocol") == where]
        if not keys:
            raise ConfigError(f"no thresholds measured on {where!r}; measured: {', '.join(sets)}")
    else:
        keys = sorted(sets, key=lambda k: _protocol_rank(sets[k].get("protocol")))
    for key in keys:
        entry = sets[key]["thresholds"].get(short)
        if entry is not None and entry.get("threshold") is not None:
            s = sets[key]
            return float(entry["threshold"]), (f"{short} measured on {s['target']} {s['protocol']} "
                                               f"({s['num_pairs']} pairs)")
    known = sorted({n for s in sets.values() for n in s["thresholds"]})
    raise ConfigError(f"no threshold {name!r} in the thresholds file; known: {', '.join(known)} "
                      "(far=F needs at least 1/F impostor pairs)")


def _canonical(short):
    """"far=0.001" -> "far=1e-3"; other names as they are."""
    if short.startswith("far="):
        try:
            return far_name(float(short[4:]))
        except ValueError:
            raise ConfigError(f"threshold {short!r}: FAR must be a number, e.g. far=1e-3") from None
    return short


def _protocol_rank(protocol):
    return PREFERRED_PROTOCOLS.index(protocol) if protocol in PREFERRED_PROTOCOLS else len(PREFERRED_PROTOCOLS)
