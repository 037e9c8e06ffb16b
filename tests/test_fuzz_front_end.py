"""Fuzzing front-end folders (`--detector g2d:DIR`, faces/front_end_folder.read_front_end): seeded
mutations of a copy of the shipped folder. front_end.json is changed as a document (a value
anywhere replaced by a value of any JSON type: huge, negative, NaN, paths, lists, objects; a key
dropped; the top level replaced) or as bytes; the HOG filter and the landmark weights get bytes
flipped, integers rewritten, or are cut. Every outcome must be a checked folder that dlib and the
landmark network then load, or a DataError; never another exception, a hang (time_limit) or an
allocation over 1 GB (the process's peak resident memory)."""
import json
import math
import resource
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from insightface_g2d.faces.front_end_folder import read_front_end
from insightface_g2d.faces.landmark_net import WEIGHTS_DIR, LandmarkNet
from insightface_g2d.errors import DataError
from test_dlib_format import enc_int
from test_fuzz_support import Counter, fuzz, time_limit

dlib = pytest.importorskip("dlib", reason="the front end needs the [dlib] extra")

GB = 1 << 30
CONFIG = json.loads((WEIGHTS_DIR / "front_end.json").read_text())
HOG = (WEIGHTS_DIR / "masked_hog.svm").read_bytes()
WEIGHTS = (WEIGHTS_DIR / "landmarks.pt").read_bytes()
COUNTER = Counter("front-end folder")

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
              st.sampled_from([0, 1, 3, 4096, 700000, 1e300, 1e308, -1e308, math.nan, math.inf, 1.27, -0.13]),
              st.floats(), st.sampled_from(["", "../../../etc/passwd", "/etc/passwd", "masked_hog.svm",
                                            "landmarks.pt", "front_end.json", ".", "..", "a/b", "0", "1"]),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=8)


def _paths(doc, prefix=()):
    """Every key path of a JSON document."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(CONFIG)


def _replace(doc, path, value, drop=False):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    try:
        for key in path[:-1]:
            node = node[key]
        if drop:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    except (KeyError, IndexError, TypeError):  # an earlier edit removed the path: this one does nothing
        pass
    return doc


def _mutate_bytes(data, ops):
    data = bytearray(data)
    for kind, at, value in ops:
        if not data:
            break
        at %= len(data)
        if kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "integer":
            size = (data[at] & 0x0F) + 1 if data[at] & 0x0F <= 8 else 1
            data[at:at + size] = enc_int(value)
        else:
            del data[at:]
    return bytes(data)


BYTE_OPS = st.lists(st.tuples(st.sampled_from(["flip", "integer", "integer", "cut"]), st.integers(0, 1 << 20),
                              st.one_of(st.integers(-300, 5000), st.integers(-(1 << 63), 1 << 63))), max_size=3)
CONFIG_EDIT = st.one_of(
    st.tuples(st.just("value"), st.sampled_from(PATHS), JSON_VALUES),
    st.tuples(st.just("drop"), st.sampled_from(PATHS[1:]), st.none()),
    st.tuples(st.just("bytes"), st.integers(0, 1 << 12), st.binary(max_size=6)))


def _config_text(edits):
    doc, text = CONFIG, None
    for kind, where, value in edits:
        if kind == "bytes":
            raw = bytearray((text or json.dumps(doc)).encode())
            at = where % (len(raw) + 1)
            raw[at:at + len(value)] = value
            text = raw.decode("utf-8", "replace")
        elif text is None:
            doc = _replace(doc, where, value, drop=kind == "drop")
    return text if text is not None else json.dumps(doc)


@fuzz(100)
@given(edits=st.lists(CONFIG_EDIT, max_size=3), hog_ops=BYTE_OPS, weight_ops=BYTE_OPS,
       which=st.sampled_from(["config", "hog", "weights", "all"]))
def test_fuzz_front_end_folder(edits, hog_ops, weight_ops, which):
    COUNTER.start()
    with tempfile.TemporaryDirectory() as tmp, time_limit():
        folder = Path(tmp) / "fe"
        folder.mkdir()
        (folder / "front_end.json").write_text(_config_text(edits) if which in ("config", "all")
                                               else json.dumps(CONFIG))
        (folder / "masked_hog.svm").write_bytes(_mutate_bytes(HOG, hog_ops) if which in ("hog", "all") else HOG)
        (folder / "landmarks.pt").write_bytes(_mutate_bytes(WEIGHTS, weight_ops) if which in ("weights", "all")
                                              else WEIGHTS)
        try:
            front_end = read_front_end(folder)
        except DataError as err:
            assert "\n" not in str(err)
            COUNTER.add("refused")
            return
        assert front_end.hog_path.parent == folder
        dlib.fhog_object_detector(str(front_end.hog_path))  # what passed the check, dlib loads
        net = LandmarkNet(front_end.widths, front_end.hidden)
        net.load_state_dict(front_end.weights)
        COUNTER.add("accepted")


def test_fuzz_front_end_folder_report():
    """Runs after the campaign (file order): the counts, and the process's peak memory."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    COUNTER.report()
    assert COUNTER.n > 0 and peak - COUNTER.baseline < GB, f"peak resident memory {peak / GB:.2f} GB"


def test_the_copy_is_the_shipped_folder(tmp_path):
    shutil.copytree(WEIGHTS_DIR, tmp_path / "fe")
    assert read_front_end(tmp_path / "fe").widths == tuple(CONFIG["landmarks"].get("widths", (16, 32, 64, 128)))
