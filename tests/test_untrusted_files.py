"""Untrusted files: pickles and checkpoints that would run a command are refused, and nothing runs.

Each crafted file calls os.system / subprocess / builtins.eval / builtins.exec through
__reduce__ (directly, nested inside a valid-looking structure, or spelled with other opcodes).
A marker file that the payload would create must stay absent, and the loader must raise the
project's own error. Static checks: every torch.load in the package passes weights_only=True,
and no pickle loading happens outside the restricted .bin unpickler.
"""
import ast
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d.backbones.checkpoint import load_backbone_weights, read_state_dict
from insightface_g2d.errors import CheckpointError, DataError
from insightface_g2d.evaluation import binfile as B
from insightface_g2d.evaluation.binfile import load_bin

PACKAGE = Path(__file__).resolve().parents[1] / "insightface_g2d"


def _png(rgb):
    return cv2.imencode(".png", rgb)[1].tobytes()


FACE = _png(np.full((16, 16, 3), 128, np.uint8))


class Reduce:
    """An object whose unpickling calls `fn(*args)`."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(marker):
    """(name, object that runs a command creating `marker` when unpickled)."""
    m = str(marker)
    return [
        ("os.system", Reduce(os.system, f"touch {m}")),
        ("subprocess.call", Reduce(subprocess.call, ["touch", m])),
        ("subprocess.Popen", Reduce(subprocess.Popen, ["touch", m])),
        ("builtins.eval", Reduce(eval, f"open({m!r}, 'w').close()")),
        ("builtins.exec", Reduce(exec, f"open({m!r}, 'w').close()")),
    ]


def placements(evil):
    """The payload alone and nested inside .bin-shaped structures."""
    return {
        "alone": evil,
        "as an image": ([FACE, evil], [True]),
        "as a label": ([FACE, FACE], [evil]),
        "wrapping the pair": (evil, ([FACE, FACE], [True])),
        "deep inside": ([FACE, FACE], [True], {"x": [(evil,)]}),
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_bin_pickles_that_run_commands_are_refused(tmp_path, protocol):
    marker = tmp_path / "pwned"
    count = 0
    for name, evil in payloads(marker):
        for where, obj in placements(evil).items():
            path = tmp_path / f"evil_{protocol}.bin"
            path.write_bytes(pickle.dumps(obj, protocol=protocol))
            with pytest.raises(DataError, match="refusing to load global"):
                load_bin(path)
            assert not marker.exists(), f"{name} {where} (protocol {protocol}) ran"
            count += 1
    assert count == 25
    # control: the same payload does run under plain pickle (so the marker check can fail)
    pickle.loads(pickle.dumps(payloads(marker)[0][1], protocol=protocol))
    assert marker.exists()


def _u(s):
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


@pytest.mark.parametrize("opcodes", [
    b"\x80\x04" + _u("os") + _u("system") + b"\x93" + _u("touch {m}") + b"\x85R.",          # STACK_GLOBAL
    b"(S'touch {m}'\nios\nsystem\n.",                                                           # INST
    b"\x80\x02(cos\nsystem\nX\x00\x00\x00\x00o.",                                               # OBJ
    b"c__builtin__\neval\n(S'open(\"{m}\", \"w\").close()'\ntR.",                              # Python 2 name
    b"\x80\x02cposix\nsystem\nX\x00\x00\x00\x00\x85R.",                                         # posix module
    b"\x80\x02ccopyreg\n_reconstructor\n(cos\n_wrap_close\nc__builtin__\nobject\nNtR.",        # copyreg
    b"\x80\x02\x82\x01.",                                                                       # EXT1 code
    b"\x80\x02P1\n.",                                                                           # persistent id
])
def test_bin_opcode_spellings_refused(tmp_path, opcodes):
    marker = tmp_path / "pwned"
    data = opcodes.replace(b"{m}", str(marker).encode())
    (tmp_path / "x.bin").write_bytes(data)
    with pytest.raises(DataError, match="refus|not a plain|corrupt"):
        load_bin(tmp_path / "x.bin")
    assert not marker.exists()


def test_bin_pickle_cannot_change_the_unpickler(tmp_path):
    """Regression: BUILD on the stand-ins used to set their attributes for every later load."""
    before = B._latin1_encode.__defaults__
    # GLOBAL _codecs.encode; BUILD (None, {"__defaults__": ("latin1", "strict")}) on it; then a valid pair
    data = (b"\x80\x04c_codecs\nencode\nN}" + _u("__defaults__") + _u("latin1") + _u("strict") + b"\x86s\x86b0"
            + b"](B" + struct.pack("<I", len(FACE)) + FACE + b"B" + struct.pack("<I", len(FACE)) + FACE
            + b"e](\x88e\x86.")
    (tmp_path / "x.bin").write_bytes(data)
    try:
        with pytest.raises(DataError):
            load_bin(tmp_path / "x.bin")
        assert B._latin1_encode.__defaults__ == before
    finally:
        B._latin1_encode.__defaults__ = before


def test_bin_codecs_errors_handler_is_a_data_error(tmp_path):
    """Regression: a named errors handler used to escape as LookupError."""
    data = b"\x80\x04c_codecs\nencode\n" + _u("\u20ac") + _u("latin1") + _u("bogus") + b"\x87R0]]\x86."
    (tmp_path / "x.bin").write_bytes(data)
    with pytest.raises(DataError):
        load_bin(tmp_path / "x.bin")


def _png_claiming(width, height):
    import zlib

    png = bytearray(_png(np.zeros((8, 8, 3), np.uint8)))
    struct.pack_into(">II", png, 16, width, height)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_bin_image_too_large_for_opencv_is_a_data_error(tmp_path):
    """Regression: OpenCV's own size limit used to escape as cv2.error."""
    B.write_bin_records(tmp_path / "x.bin", [_png_claiming(70000, 70000)] * 2, [True])
    with pytest.raises(DataError):
        load_bin(tmp_path / "x.bin")


HOSTILE_IMAGE_CHILD = r"""
import resource, struct, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
import numpy as np, cv2
from insightface_g2d.errors import DataError
from insightface_g2d.evaluation import binfile as B
img = cv2.imencode(".jpg", np.zeros((112, 112, 3), np.uint8))[1].tobytes()
jpeg = bytearray(img)
sof = jpeg.find(b"\xff\xc0")
struct.pack_into(">HH", jpeg, sof + 5, 8000, 8000)  # 3 KB claiming 64 Mpixel: fits the cap, costs seconds
B.write_bin_records(sys.argv[1], [bytes(jpeg)] * 2, [True])
t = time.time()
try:
    B.load_bin(sys.argv[1])
    print("LOADED in %.1f s" % (time.time() - t))
except DataError as err:
    print("DATAERROR in %.1f s" % (time.time() - t))
"""


def test_bin_hostile_image_header_refused_quickly(tmp_path):
    """Regression: a 3 KB JPEG claiming 8000x8000 used to load (1 s, ~200 MB; 30000x30000:
    35 s, 5 GB). Run in a child capped at 1.5 GB of address space and 20 s, so the bug cannot hurt the machine."""
    try:
        out = subprocess.run([sys.executable, "-c", HOSTILE_IMAGE_CHILD, str(tmp_path / "x.bin")],
                             capture_output=True, text=True, timeout=20)
        result = out.stdout
    except subprocess.TimeoutExpired:
        result = "TIMEOUT"
    assert result.startswith("DATAERROR"), result or out.stderr[-500:]
    assert float(result.split()[2]) < 1.0, result


# ------------------------------------------------------------------------------------ checkpoints
def _evil_checkpoints(tmp_path, marker):
    """Files that torch.load(weights_only=False) would execute, in both of torch's formats."""
    tiny = torch.nn.Linear(2, 2).state_dict()
    files = {}
    for name, evil in payloads(marker)[:4]:
        for where, obj in {"value": {**tiny, "weight": evil}, "nested": {"state_dict": {"x": [evil]}},
                           "top": evil}.items():
            p = tmp_path / f"{name}_{where}.pt"
            torch.save(obj, p)
            files[f"{name} {where}"] = p
            legacy = tmp_path / f"{name}_{where}_legacy.pt"
            torch.save(obj, legacy, _use_new_zipfile_serialization=False)
            files[f"{name} {where} legacy"] = legacy
    return files


def test_crafted_checkpoints_refused_by_read_state_dict(tmp_path):
    marker = tmp_path / "pwned"
    files = _evil_checkpoints(tmp_path, marker)
    assert len(files) == 24
    model = torch.nn.Linear(2, 2)
    for what, path in files.items():
        with pytest.raises(CheckpointError, match="cannot read checkpoint"):
            read_state_dict(path)
        with pytest.raises(CheckpointError):
            load_backbone_weights(model, path, "linear")
        assert not marker.exists(), f"{what} ran"
    torch.load(files["os.system top"], weights_only=False)  # control: the payload is live
    assert marker.exists()


TINY_CONFIG = '''from easydict import EasyDict as edict
config = edict()
config.network = "g2d_t"
config.embedding_size = 32
config.batch_size = 8
config.optimizer = "adamw"
config.lr = 1e-3
config.seed = 7
config.num_workers = 0
config.rec = "synthetic:ids=4,per_id=4,seed=3"
config.teacher = dict(stage="baseline")
config.stages = [dict(name="baseline", kind="arcface", network="g2d_t", steps=2, scale=16.0)]
config.checkpoint_every = 1
config.eval = dict(enabled=False)
'''


@pytest.mark.parametrize("place", ["checkpoint_gpu_0.pt", "--resume", "stage_baseline.pt"])
def test_training_resume_refuses_crafted_checkpoint(tmp_path, place, capsys):
    """g2d-train resuming from a crafted file: one-line error, exit 2, nothing ran, nothing trained."""
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.train import main

    marker = tmp_path / "pwned"
    (tmp_path / "tiny.py").write_text(TINY_CONFIG)
    out = tmp_path / "out"
    out.mkdir()
    evil = {"format": "g2d-train-checkpoint", "stage": "baseline", "rng": Reduce(os.system, f"touch {marker}")}
    argv = [str(tmp_path / "tiny.py"), "--output", str(out), "--device", "cpu", "--no-eval"]
    if place == "--resume":
        torch.save(evil, tmp_path / "evil.pt")
        argv += ["--resume", str(tmp_path / "evil.pt")]
    else:
        torch.save(evil, out / place)
    code = run_cli(main, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cannot read checkpoint" in err and "Traceback" not in err
    assert not marker.exists()
    assert not (out / "model.pt").exists() and not (out / "run_summary.json").exists()


# ---------------------------------------------------------------------------------- static checks
def _package_sources():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    return [(p, ast.parse(p.read_text(), filename=str(p))) for p in files]


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def test_every_torch_load_is_weights_only():
    calls = []
    for path, tree in _package_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name != "torch" or alias.asname in (None, "torch"), f"{path}: torch imported as alias"
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "load" not in [a.name for a in node.names], f"{path}: 'from torch import load' hides a call"
            if isinstance(node, ast.Call) and _dotted(node.func) in ("torch.load", "torch.serialization.load"):
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                assert ok, f"{path}:{node.lineno}: torch.load without weights_only=True"
                calls.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert calls, "no torch.load found: the check looks at the wrong tree"
    print("\ntorch.load calls, all weights_only=True:", ", ".join(calls))


UNPICKLING = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
              "cPickle.load", "cPickle.loads", "dill.load", "dill.loads", "joblib.load", "shelve.open",
              "marshal.load", "marshal.loads", "pandas.read_pickle", "pd.read_pickle", "np.load", "numpy.load"}


def test_no_unpickling_outside_the_restricted_unpickler():
    found = []
    for path, tree in _package_sources():
        rel = str(path.relative_to(PACKAGE))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for mod in mods:
                    if mod.split(".")[0] in ("pickle", "_pickle", "cPickle", "dill", "joblib", "shelve", "marshal"):
                        assert rel == "evaluation/binfile.py", f"{rel}:{node.lineno}: imports {mod}"
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in ("np.load", "numpy.load"):
                    kw = {k.arg: k.value for k in node.keywords}
                    allow = kw.get("allow_pickle")
                    assert allow is None or (isinstance(allow, ast.Constant) and allow.value is False), \
                        f"{rel}:{node.lineno}: np.load with allow_pickle"
                elif name in UNPICKLING:
                    found.append(f"{rel}:{node.lineno}:{name}")
                    assert rel == "evaluation/binfile.py", f"{rel}:{node.lineno}: {name} outside binfile.py"
            if isinstance(node, ast.ClassDef) and any(_dotted(b) == "pickle.Unpickler" for b in node.bases):
                assert rel == "evaluation/binfile.py"
                methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
                assert "find_class" in methods, f"{rel}: an Unpickler without find_class"
    # binfile itself never calls pickle.load/loads: only its restricted Unpickler subclass
    assert not [f for f in found if f.endswith(("pickle.load", "pickle.loads"))], found


MEMO_BOMB_CHILD = r"""
import resource, struct, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
from insightface_g2d.errors import DataError
from insightface_g2d.evaluation import binfile as B
open(sys.argv[1], "wb").write(b"\x80\x04N" + b"r" + struct.pack("<I", 2 ** 26) + b"0]]\x86.")
t = time.time()
try:
    B.load_bin(sys.argv[1])
    print("LOADED in %.1f s" % (time.time() - t))
except DataError:
    print("DATAERROR in %.1f s" % (time.time() - t))
"""


def test_bin_memo_bomb_refused_cheaply(tmp_path):
    """Regression: LONG_BINPUT 2**26 used to cost 1 GB and ~1 s in CPython's unpickler."""
    out = subprocess.run([sys.executable, "-c", MEMO_BOMB_CHILD, str(tmp_path / "x.bin")],
                         capture_output=True, text=True, timeout=30)
    result = out.stdout
    assert result.startswith("DATAERROR"), result or out.stderr[-500:]
    assert float(result.split()[2]) < 0.1, result
