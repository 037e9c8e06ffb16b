"""Reading and writing insightface .bin verification sets, and refusing unsafe pickles."""
import os
import pickle
import struct

import cv2
import numpy as np
import pytest

from insightface_g2d.errors import DataError
from insightface_g2d.evaluation.binfile import load_bin, read_bin_records, write_bin, write_bin_records


def smooth_faces(n, size=112, seed=0):
    """Smooth random RGB images (JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, 7, 7, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


def png_bytes(rgb):
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def py2_pickle(bins, issame):
    """The opcodes Python 2's pickle.dump(..., protocol=2) emits for (list of str, list of bool).

    Python 2 `str` is BINSTRING ('T' + uint32 length + raw bytes): no globals at all.
    """
    out = b"\x80\x02" + b"]q\x00("
    for b in bins:
        out += b"T" + struct.pack("<I", len(b)) + b
    out += b"e]q\x01("
    out += b"".join(b"\x88" if s else b"\x89" for s in issame)
    out += b"e\x86q\x02."
    return out


@pytest.fixture
def faces():
    return smooth_faces(8)


def test_write_and_load_roundtrip(tmp_path, faces):
    issame = [True, False, True, False]
    write_bin(tmp_path / "a.bin", faces, issame)
    images, same = load_bin(tmp_path / "a.bin")
    assert images.shape == (8, 112, 112, 3) and images.dtype == np.uint8
    assert same.dtype == bool and same.tolist() == issame
    assert np.abs(images.astype(int) - faces).mean() < 3  # JPEG q95 of smooth images


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_python3_pickles_all_protocols_exact_pixels(tmp_path, faces, protocol):
    bins = [png_bytes(f) for f in faces]
    bins[1] = bytearray(bins[1])  # bytearray also occurs
    (tmp_path / "p.bin").write_bytes(pickle.dumps((bins, [True, False, False, True]), protocol=protocol))
    images, same = load_bin(tmp_path / "p.bin")
    np.testing.assert_array_equal(images, faces)
    assert same.tolist() == [True, False, False, True]


def test_python2_pickle(tmp_path, faces):
    data = py2_pickle([png_bytes(f) for f in faces], [False, True, True, False])
    with pytest.raises(UnicodeDecodeError):  # why encoding="bytes" is needed for the released files
        pickle.loads(data)
    (tmp_path / "py2.bin").write_bytes(data)
    images, same = load_bin(tmp_path / "py2.bin")
    np.testing.assert_array_equal(images, faces)
    assert same.tolist() == [False, True, True, False]


def test_resizes_non_112_images(tmp_path):
    big = smooth_faces(2, size=150)
    write_bin_records(tmp_path / "b.bin", [png_bytes(b) for b in big], [True])
    images, _ = load_bin(tmp_path / "b.bin")
    assert images.shape == (2, 112, 112, 3)
    expect = cv2.resize(big[0], (112, 112), interpolation=cv2.INTER_AREA)
    assert np.abs(images[0].astype(int) - expect).max() <= 1


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("kind", ["system", "eval", "outer"])
def test_malicious_pickle_refused_and_not_executed(tmp_path, faces, kind):
    marker = tmp_path / "pwned"
    ok = [png_bytes(f) for f in faces[:2]]
    if kind == "system":
        payload = ([ok[0], _Evil(marker)], [True])
    elif kind == "eval":
        payload = (ok, [_EvalEvil(marker)])
    else:
        payload = _Evil(marker)
    for protocol in (0, 2, 4):
        path = tmp_path / f"evil{protocol}.bin"
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        with pytest.raises(DataError, match="refus"):
            load_bin(path)
        assert not marker.exists()


def test_codecs_encode_only_latin1(tmp_path):
    # _codecs.encode is allowed only as Python 3 uses it for bytes: (str, 'latin1').
    evil = b"\x80\x02c_codecs\nencode\nX\x04\x00\x00\x00abcdX\x0a\x00\x00\x00zlib_codec\x86R]\x86."
    (tmp_path / "c.bin").write_bytes(evil)
    with pytest.raises(DataError, match="latin1"):
        read_bin_records(tmp_path / "c.bin")


def test_numpy_payload_refused(tmp_path, faces):
    (tmp_path / "np.bin").write_bytes(pickle.dumps(([faces[0], faces[1]], [True]), protocol=2))
    with pytest.raises(DataError, match="refusing to load global numpy"):
        load_bin(tmp_path / "np.bin")


@pytest.mark.parametrize(
    "payload,match",
    [
        (([b"x"], [True]), "2 images per pair"),
        (([b"x", b"y"], ["yes"]), "issame_list"),
        (([b"x", 3], [True]), "image 1"),
        (({"bins": 1},), "pair"),
        (([], []), "empty"),
    ],
)
def test_structure_validation(tmp_path, payload, match):
    obj = payload[0] if len(payload) == 1 else payload
    (tmp_path / "s.bin").write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DataError, match=match):
        load_bin(tmp_path / "s.bin")


def test_truncated_and_missing_files(tmp_path, faces):
    write_bin(tmp_path / "t.bin", faces, [True] * 4)
    data = (tmp_path / "t.bin").read_bytes()
    (tmp_path / "t.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.bin"):
        load_bin(tmp_path / "t.bin")
    with pytest.raises(DataError, match="not found"):
        load_bin(tmp_path / "nope.bin")


def test_undecodable_image_names_file_and_index(tmp_path, faces):
    bins = [png_bytes(f) for f in faces]
    bins[5] = b"\xff\xd8 not a jpeg"
    write_bin_records(tmp_path / "u.bin", bins, [True] * 4)
    with pytest.raises(DataError, match=r"u\.bin: image 5 \(pair 2\)"):
        load_bin(tmp_path / "u.bin")


def test_written_file_readable_by_plain_pickle_as_arcface_does(tmp_path, faces):
    # arcface_torch's load_bin first tries pickle.load(f) without encoding: our files must pass.
    write_bin(tmp_path / "w.bin", faces, [True, False, True, False])
    with open(tmp_path / "w.bin", "rb") as f:
        bins, issame = pickle.load(f)
    assert all(isinstance(b, bytes) for b in bins) and issame == [True, False, True, False]
