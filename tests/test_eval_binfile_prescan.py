"""binfile's opcode pre-scan and stand-ins: real .bin pickles (every protocol, Python 2's opcodes,
memo references) still load; pickles that would make the unpickler allocate what they claim, or
that BUILD on the stand-ins, are refused."""
import pickle
import struct

import cv2
import numpy as np
import pytest

from insightface_g2d.errors import DataError
from insightface_g2d.evaluation import binfile as B

FACES = [cv2.resize(np.random.default_rng(i).integers(0, 256, (4, 4, 3), dtype=np.uint8), (16, 16))
         for i in range(4)]
PNGS = [cv2.imencode(".png", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in FACES]


def _load(tmp_path, data):
    (tmp_path / "x.bin").write_bytes(data)
    return B.load_bin(tmp_path / "x.bin", image_size=16)


@pytest.mark.parametrize("protocol", range(6))
def test_memo_references_of_real_pickles_load(tmp_path, protocol):
    # the same image object twice: the pickler writes it once and refers back through the memo
    bins = [PNGS[0], PNGS[1], PNGS[0], PNGS[0]]
    images, issame = _load(tmp_path, pickle.dumps((bins, [True, False]), protocol=protocol))
    for img, i in zip(images, [0, 1, 0, 0]):
        np.testing.assert_array_equal(img, FACES[i])
    assert issame.tolist() == [True, False]


def test_python2_protocol0_and_explicit_strict_errors_load(tmp_path):
    # Python 2 protocol 0: (lp0 / S'...' / p1 ...; Python 3 protocol 2 bytes: _codecs.encode(u, 'latin1')
    text = "((lp0\n" + "".join(f"S{png.decode('latin-1')!r}\np{i + 1}\na" for i, png in enumerate(PNGS[:2]))
    data = (text + "(lp3\nI01\natp4\n.").encode("latin-1")
    images, issame = _load(tmp_path, data)
    np.testing.assert_array_equal(images[1], FACES[1])
    u = PNGS[2].decode("latin-1").encode("utf-8")
    call = b"c_codecs\nencode\nX" + struct.pack("<I", len(u)) + u + b"X\x06\x00\x00\x00latin1X\x06\x00\x00\x00strict\x87R"
    images, _ = _load(tmp_path, b"\x80\x02]q\x00(" + call + call + b"e]q\x01\x89a\x86q\x02.")
    np.testing.assert_array_equal(images[0], FACES[2])


@pytest.mark.parametrize("data, match", [
    (b"\x80\x04Nr" + struct.pack("<I", 2 ** 30) + b"0]]\x86.", "memo index 1073741824"),
    (b"\x80\x02Nq\xc8.", "memo index 200"),
    (b"(lp99999999999\n.", "memo index"),
    (b"(lpx\n.", "memo index"),
    (b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 40) + b"ab.", "claims 1099511627776 bytes"),
    (b"\x80\x04\x95" + struct.pack("<Q", 2 ** 40) + b"N.", "frame"),
    (b"\x80\x02T" + struct.pack("<i", -5) + b"N.", "claims -5 bytes"),
    (b"\x80\x04]\xfe.", "unknown opcode 0xfe"),
    (b"\x80\x04]]\x86", "STOP"),
    (b"\x80\x02c_codecs\nencode", "end of line"),
])
def test_prescan_refuses(tmp_path, data, match):
    with pytest.raises(DataError, match="not a plain insightface .bin pickle.*" + match):
        _load(tmp_path, data)


def test_stand_ins_call_through_and_refuse_build():
    enc = B._SAFE_GLOBALS[("_codecs", "encode")]
    assert enc("\xe9t\xe9", "latin-1") == b"\xe9t\xe9"
    assert B._SAFE_GLOBALS[("__builtin__", "bytes")](b"ab") == b"ab"
    assert B._SAFE_GLOBALS[("builtins", "bytearray")]("ab", "latin1") == bytearray(b"ab")
    with pytest.raises(pickle.UnpicklingError):
        enc.__setstate__({"x": 1})
    with pytest.raises(AttributeError):
        enc.x = 1
    with pytest.raises(pickle.UnpicklingError, match="errors='strict'"):
        enc("\u20ac", "latin1", "replace")  # a handler that would turn bad text into '?' silently


def test_build_with_slot_state_is_refused(tmp_path):
    # BUILD (None, {"marker": True}) on bytes: slot-state form, which setattr()s each item
    data = b"\x80\x04cbuiltins\nbytes\nN}\x8c\x06marker\x88s\x86b0]]\x86."
    with pytest.raises(DataError, match="BUILD"):
        _load(tmp_path, data)
    assert not hasattr(B._bytes_from, "marker")


def test_images_repeated_through_the_memo_cannot_ask_for_gigabytes(tmp_path, monkeypatch):
    # one image, then 2-byte BINGET references to it: ~2 bytes per 112x112x3 (37 KB) decoded image
    n = 200_000  # 7.0 GiB decoded from a 500 KB file
    data = (b"\x80\x02](B" + struct.pack("<I", len(PNGS[0])) + PNGS[0] + b"q\x01" + b"h\x01" * (n - 1)
            + b"e](" + b"\x88" * (n // 2) + b"e\x86.")
    (tmp_path / "x.bin").write_bytes(data)
    with pytest.raises(DataError, match=r"200000 images of 112x112 would take 7\.0 GiB"):
        B.load_bin(tmp_path / "x.bin")
    monkeypatch.setattr(B, "_MIN_DECODED_CAP", 0)  # the ratio alone: a real file's images are not refused
    bins = PNGS * 2
    B.write_bin_records(tmp_path / "ok.bin", bins, [True] * 4)
    assert B.load_bin(tmp_path / "ok.bin", image_size=16)[0].shape == (8, 16, 16, 3)
