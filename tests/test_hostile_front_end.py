"""Hostile front-end folders (`--detector g2d:DIR`, issue 28 item 3): each is refused as a whole
before anything is built, in one line naming the file and what is wrong, never a traceback, a
gigabyte allocation, torch's advice on weights_only or a file read from outside the folder. The
folders are copies of the shipped one, damaged here."""
import json
import math
import os
import shutil

import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.data import main as data_main
from insightface_g2d.faces.front_end_folder import read_front_end
from insightface_g2d.faces.landmark_net import WEIGHTS_DIR
from insightface_g2d.errors import DataError
from test_untrusted_files import Reduce

pytest.importorskip("dlib", reason="the front end needs the [dlib] extra")


def shipped_copy(folder):
    shutil.copytree(WEIGHTS_DIR, folder)
    return folder


def edit_config(folder, change):
    path = folder / "front_end.json"
    doc = json.loads(path.read_text())
    doc = change(doc)
    path.write_text(json.dumps(doc))


def hog(**changes):
    def change(doc):
        doc["masked_hog"].update(changes)
        return doc
    return change


def calibration(value):
    return hog(calibration={"0": value, "1": [0.0, -0.13, 1.27]})


def landmarks(**changes):
    def change(doc):
        doc["landmarks"].update(changes)
        return doc
    return change


CONFIGS = {
    "top level a list": (lambda doc: [doc], "holds a list, not a JSON object"),
    "top level a string": (lambda doc: "front end", "holds a string"),
    "masked_hog without file": (lambda doc: {**doc, "masked_hog": {"calibration": {}}}, "masked_hog.file must be"),
    "masked_hog.file an int": (hog(file=3), "must be a file name, got int"),
    "masked_hog a list": (lambda doc: {**doc, "masked_hog": [1]}, "masked_hog is a list"),
    "calibration key": (hog(calibration={"x": [0.0, 0.0, 1.0]}), "key 'x' is not a filter index"),
    "calibration too few": (calibration([0.0, 1.0]), "calibration.0 must be 3 numbers"),
    "calibration zeros": (calibration([0.0, 0.0, 0.0]), "calibration.0 must be 3 numbers"),
    "calibration 1e308": (calibration([1e308, 0.0, 1.2]), "calibration.0 must be 3 numbers"),
    "calibration NaN": (calibration([math.nan, 0.0, 1.2]), "NaN is not a number"),
    "calibration strings": (calibration(["0", "0", "1"]), "calibration.0 must be 3 numbers"),
    "widths 4096": (landmarks(widths=[64, 128, 4096, 4096]), "landmarks.widths[2] must be a whole number"),
    "widths 1e300": (landmarks(widths=[16, 32, 64, 1e300]), "landmarks.widths[3] must be a whole number"),
    "widths three": (landmarks(widths=[16, 32, 64]), "landmarks.widths must be 4 channel counts"),
    "hidden 700000": (landmarks(hidden=700000), "landmarks.hidden must be a whole number in 1..1024"),
    "hidden true": (landmarks(hidden=True), "landmarks.hidden must be"),
    "file outside": (hog(file="../../../etc/passwd"), "is not a plain file name"),
    "file absolute": (hog(file="/etc/passwd"), "is not a plain file name"),
    "file missing": (hog(file="nothing.svm"), "not found"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_bad_front_end_json_is_refused_in_one_line(tmp_path, case):
    folder = shipped_copy(tmp_path / "fe")
    change, words = CONFIGS[case]
    edit_config(folder, change)
    with pytest.raises(DataError, match=None) as err:
        read_front_end(folder)
    text = str(err.value)
    assert words in text and "\n" not in text and "front_end.json" in text, text


def test_hostile_widths_are_refused_before_any_allocation(tmp_path):
    """widths of 4096 would make a 2.7 GB network: refused while the config is read, long before."""
    import tracemalloc

    folder = shipped_copy(tmp_path / "fe")
    edit_config(folder, landmarks(widths=[64, 128, 4096, 4096], hidden=700000))
    tracemalloc.start()
    try:
        with pytest.raises(DataError):
            read_front_end(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


@pytest.mark.parametrize("content, words", [(b"", "file ends early"), (b"garbage" * 100, "not a dlib HOG detector"),
                                            (None, "outside 1..20")], ids=["empty", "garbage", "filters"])
def test_a_bad_hog_file_is_refused_before_dlib_reads_it(tmp_path, content, words):
    folder = shipped_copy(tmp_path / "fe")
    path = folder / "masked_hog.svm"
    if content is None:  # the number of filters (after the header: 1) made 100000
        data = path.read_bytes()
        content = data[:38] + b"\x03\xa0\x86\x01" + data[40:]
    path.write_bytes(content)
    with pytest.raises(DataError, match=words) as err:
        read_front_end(folder)
    assert "masked_hog.svm" in str(err.value) and "\n" not in str(err.value)


def test_a_hog_file_linked_from_outside_is_not_read(tmp_path):
    folder = shipped_copy(tmp_path / "fe")
    outside = tmp_path / "secret.svm"
    shutil.copy(folder / "masked_hog.svm", outside)
    os.remove(folder / "masked_hog.svm")
    os.symlink(outside, folder / "masked_hog.svm")
    with pytest.raises(DataError, match="links out of the folder"):
        read_front_end(folder)


def test_a_pickle_payload_as_landmark_weights_is_refused_without_running_it(tmp_path):
    folder = shipped_copy(tmp_path / "fe")
    marker = tmp_path / "ran"
    torch.save({"features.0.weight": Reduce(os.system, f"touch {marker}")}, folder / "landmarks.pt")
    with pytest.raises(DataError) as err:
        read_front_end(folder)
    text = str(err.value)
    assert "holds Python objects" in text and "weights_only" not in text and "\n" not in text
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["nan", "shape", "list"])
def test_landmark_weights_must_match_the_network_and_be_finite(tmp_path, damage):
    folder = shipped_copy(tmp_path / "fe")
    state = torch.load(folder / "landmarks.pt", weights_only=True)
    if damage == "nan":
        state["head.3.bias"] = torch.full_like(state["head.3.bias"], math.nan)
    elif damage == "shape":
        state["head.3.bias"] = state["head.3.bias"][:5]
    torch.save([1, 2] if damage == "list" else state, folder / "landmarks.pt")
    with pytest.raises(DataError, match={"nan": "head.3.bias holds NaN", "shape": "head.3.bias is",
                                         "list": "not a state dict"}[damage]):
        read_front_end(folder)


def test_align_with_a_hostile_front_end_exits_2_and_aligns_nothing(tmp_path, capsys):
    import cv2
    import numpy as np

    folder = shipped_copy(tmp_path / "fe")
    edit_config(folder, landmarks(hidden=700000))
    src = tmp_path / "photos" / "someone"
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), np.full((64, 64, 3), 100, np.uint8))
    rc = run_cli(data_main, ["align", "--src", str(tmp_path / "photos"), "--out", str(tmp_path / "out"),
                             "--detector", f"g2d:{folder}", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "landmarks.hidden" in err, err
    assert not (tmp_path / "out" / "someone").exists()


def test_the_shipped_folder_passes():
    front_end = read_front_end(WEIGHTS_DIR)
    assert set(front_end.calibration) == {0, 1} and front_end.widths == (16, 32, 64, 128)
