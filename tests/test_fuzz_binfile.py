"""Fuzzing the .bin loader (insightface_g2d.evaluation.binfile.load_bin, restricted unpickler).

Inputs: random bytes; valid .bin pickles (protocols 0-5 and Python 2's opcodes) of PNG faces,
truncated or with flipped/overwritten bytes; valid pickles of every wrong structure built from
allowed types; and random opcode programs that name allowed and forbidden globals, call them,
BUILD on them, use the memo, marks and protocol-5 buffers.

Every outcome must be a correct parse or DataError. "Silently wrong" is checked as:
* a truncated pickle never loads (the STOP opcode is the last byte);
* a pickle whose only changed bytes are inside one image's PNG bytes never loads (PNG is
  checksummed; JPEG would not be, which is why these sets are PNG);
* a mutated pickle that loads returns only faces equal, pixel for pixel, to faces of the original
  set, 2 per pair; and the original issame list unless bytes after the last image changed (pickle
  has no checksum: a flipped NEWTRUE/NEWFALSE opcode is undetectable by any reader);
* a valid pickle of any structure loads exactly when it is a (list, list) pair of 2N encoded
  images and N booleans (or 0/1), and then returns those images and labels;
* no program ever runs a global: a marker file that forbidden globals would create stays absent.

These fuzzers once found hostile image headers decoded at a cost of seconds and gigabytes,
cv2.error and LookupError escaping, BUILD changing the unpickler's stand-ins and a memo index
allocating gigabytes; all are fixed and the fuzzers hold load_bin to that (tests/test_untrusted_files.py
has one regression test for each). Pickles that store into a huge memo slot run under a 2 s limit
(a regression there costs gigabytes, not just time); tests/test_untrusted_files.py checks that case
in a memory-capped child.
"""
import os
import pickle
import pickletools
import struct
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from insightface_g2d.errors import DataError
from insightface_g2d.evaluation import binfile as B
from test_fuzz_support import EXAMPLE_TIMEOUT_S, Counter, fuzz, time_limit

SIZE = 16
MARKER = Path(tempfile.gettempdir()) / f"g2d_fuzz_pwned_{os.getpid()}"
def _png(rgb):
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])[1].tobytes()


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (SIZE, SIZE),
                       interpolation=cv2.INTER_CUBIC) for _ in range(n)]


FACES = _faces(4)
PNGS = [_png(f) for f in FACES]
ISSAME = [True, False]
assert len(set(PNGS)) == len(PNGS)


def py2_pickle(bins, issame):
    """Python 2's protocol-2 opcodes for (list of str, list of bool): BINSTRING, no globals."""
    out = b"\x80\x02]q\x00("
    for b in bins:
        out += b"T" + struct.pack("<I", len(b)) + b
    out += b"e]q\x01(" + b"".join(b"\x88" if s else b"\x89" for s in issame) + b"e\x86q\x02."
    return out


VARIANTS = {f"protocol{p}": pickle.dumps((PNGS, ISSAME), protocol=p) for p in range(6)}
VARIANTS["python2"] = py2_pickle(PNGS, ISSAME)


def image_regions(data):
    """[(start, end)] of each PNG's raw bytes in the pickle (protocol 0 escapes them: none found)."""
    out = []
    for png in PNGS:
        at = data.find(png)
        if at >= 0:
            out.append((at, at + len(png)))
    return out


def load(path):
    """('ok', images, issame) | ('data-error',)."""
    try:
        images, issame = B.load_bin(path, image_size=SIZE)
    except DataError:
        return ("data-error",)
    return ("ok", images, issame)


MEMO_LIMIT = 1 << 16


def memo_bomb(data):
    """True when the pickle stores into a memo slot past MEMO_LIMIT before its first bad opcode:
    CPython's C unpickler would grow and zero its memo table to twice that index (once
    `LONG_BINPUT 2**28` in a 12-byte file took 4 GB and 3 s); load_bin must refuse it first."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # genops decoding protocol-0 strings warns on odd escapes
            for op, arg, _ in pickletools.genops(data):
                if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > MEMO_LIMIT:
                    return True
    except Exception:  # noqa: BLE001 - genops stops where the unpickler would fail anyway
        return False
    return False


def load_bin_outcome(data):
    bomb = memo_bomb(data)
    with tempfile.TemporaryDirectory() as tmp, time_limit(2.0 if bomb else EXAMPLE_TIMEOUT_S):
        path = Path(tmp) / "x.bin"
        path.write_bytes(data)
        out = load(path)
    if bomb:
        assert out[0] == "data-error", "a pickle storing into a huge memo slot loaded"
        return ("data-error (memo index refused)",)
    return out


def _stand_in_state():
    return {name: (f.__defaults__, f.__kwdefaults__, dict(f.__dict__))
            for name, f in (("encode", B._latin1_encode), ("bytes", B._bytes_from), ("bytearray", B._bytearray_from))}


_CLEAN_STATE = _stand_in_state()


def _restore_stand_ins():
    """Undo attribute changes a pickle made on the stand-in functions (none may) and say
    whether there were any."""
    changed = _stand_in_state() != _CLEAN_STATE
    for name, f in (("encode", B._latin1_encode), ("bytes", B._bytes_from), ("bytearray", B._bytearray_from)):
        defaults, kwdefaults, attrs = _CLEAN_STATE[name]
        f.__defaults__, f.__kwdefaults__ = defaults, kwdefaults
        f.__dict__.clear()
        f.__dict__.update(attrs)
    return changed


# ------------------------------------------------------------------------------------------ tests
def test_fuzz_binfile_random_bytes():
    counter = Counter("binfile.random bytes")

    @fuzz(300)
    @given(data=st.one_of(st.binary(max_size=400),
                          st.binary(max_size=200).map(lambda b: b"\x80\x04" + b),
                          st.binary(max_size=200).map(lambda b: b"\x80\x02]q\x00(" + b)))
    def run(data):
        with time_limit():
            out = load_bin_outcome(data)
        if out[0] == "ok":
            assert len(out[1]) == 2 * len(out[2]) and out[1].dtype == np.uint8
        counter.add(out[0])

    run()
    counter.report()


@st.composite
def mutated_bin(draw):
    name = draw(st.sampled_from(sorted(VARIANTS)))
    data = bytearray(VARIANTS[name])
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[pos] ^= draw(st.integers(1, 255))
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos:pos + len(chunk)] = chunk[: len(data) - pos]
        edits.append(pos)
    return name, bytes(data), edits


def test_fuzz_binfile_mutated_valid_pickles():
    counter = Counter("binfile.mutated valid .bin (protocols 0-5, python2)")

    @fuzz(300)
    @given(case=mutated_bin())
    def run(case):
        name, data, edits = case
        original = VARIANTS[name]
        dirty = {i for i in range(len(data)) if data[i] != original[i]}
        regions = image_regions(original)
        with time_limit():
            out = load_bin_outcome(data)
        in_images = dirty and regions and all(any(a <= i < b for a, b in regions) for i in dirty)
        if in_images:
            assert out[0] != "ok", f"{name}: image bytes changed at {sorted(dirty)} but the set loaded"
        if out[0] == "ok":
            images, issame = out[1], out[2]
            assert len(images) == 2 * len(issame)
            for img in images:
                assert any(np.array_equal(img, f) for f in FACES), "a mutated .bin loaded a face it never held"
            tail = max(b for a, b in regions) if regions else 0
            if regions and not any(i >= tail for i in dirty):
                assert issame.tolist() == ISSAME
        counter.add(out[0])

    run()
    counter.report()


def test_fuzz_binfile_truncated_pickles_never_load():
    counter = Counter("binfile.truncated valid .bin")

    @fuzz(200)
    @given(name=st.sampled_from(sorted(VARIANTS)), frac=st.floats(0, 1, exclude_max=True))
    def run(name, frac):
        data = VARIANTS[name]
        cut = int(frac * len(data))
        with time_limit():
            out = load_bin_outcome(data[:cut])
        assert out[0] == "data-error", f"{name} cut at {cut}/{len(data)}: {out[0]}"
        counter.add(out[0])

    run()
    for name, data in VARIANTS.items():  # and the intact files load exactly
        out = load_bin_outcome(data)
        assert out[0] == "ok" and out[2].tolist() == ISSAME
        assert all(np.array_equal(a, b) for a, b in zip(out[1], FACES)), name
    counter.report()


LEAVES = st.one_of(st.sampled_from(PNGS), st.booleans(), st.integers(-3, 3), st.binary(max_size=8),
                   st.text(max_size=4), st.none(), st.floats(allow_nan=False), st.sampled_from([b"", bytearray(b"x")]))
STRUCTURES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.lists(inner, max_size=5).map(tuple),
    st.dictionaries(st.text(max_size=3), inner, max_size=3)), max_leaves=12)


def expected_structure(obj):
    """Independent statement of the .bin layout: (bins, issame) or None."""
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        return None
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        return None
    if not all(isinstance(b, (bytes, bytearray)) for b in bins):
        return None
    if not all(type(s) in (bool, int) and s in (0, 1) for s in issame):
        return None
    if not issame or len(bins) != 2 * len(issame):
        return None
    return bins, [bool(s) for s in issame]


def test_fuzz_binfile_valid_pickles_of_any_structure():
    counter = Counter("binfile.valid pickles, arbitrary structure")

    @fuzz(300)
    @given(obj=st.one_of(
        STRUCTURES,
        st.tuples(st.lists(st.sampled_from(PNGS), max_size=6), st.lists(st.sampled_from([True, False, 0, 1, 2]), max_size=3)),
        st.tuples(st.lists(st.sampled_from(PNGS + [b"junk"]), min_size=2, max_size=4), st.lists(st.booleans(), min_size=1, max_size=2)).map(list),
    ), protocol=st.integers(0, 5))
    def run(obj, protocol):
        data = pickle.dumps(obj, protocol=protocol)
        with time_limit():
            out = load_bin_outcome(data)
        want = expected_structure(obj)
        if want is None:
            assert out[0] != "ok", f"wrong structure {obj!r} loaded"
        elif all(bytes(b) in PNGS for b in want[0]):
            assert out[0] == "ok", f"valid set {obj!r} refused"
            assert out[2].tolist() == want[1]
            for img, b in zip(out[1], want[0]):
                assert np.array_equal(img, FACES[PNGS.index(bytes(b))])
        else:
            assert out[0] != "ok", "undecodable image bytes loaded"
        counter.add(out[0] if want is None else "valid-" + out[0])

    run()
    counter.report()


# opcode snippets for program fuzzing: allowed globals, forbidden ones, data, structure, memo, calls
def _unicode(s):
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


_EVIL_CMD = f"touch {MARKER}"
OPCODES = [
    b"c_codecs\nencode\n", b"cbuiltins\nbytes\n", b"c__builtin__\nbytes\n", b"cbuiltins\nbytearray\n",
    b"cos\nsystem\n", b"cposix\nsystem\n", b"csubprocess\ncall\n", b"cbuiltins\neval\n", b"cbuiltins\nexec\n",
    b"cbuiltins\ngetattr\n", b"ccopyreg\n_reconstructor\n", b"cnumpy.core.multiarray\n_reconstruct\n",
    _unicode("os"), _unicode("system"), b"\x93",  # STACK_GLOBAL
    _unicode(_EVIL_CMD), _unicode(f"open({str(MARKER)!r}, 'w').close()"), _unicode("latin1"), _unicode("latin-1"),
    _unicode("\u20ac\u00e9"), _unicode("bogus"), _unicode("strict"), _unicode("__defaults__"),
    _unicode("__dict__"), _unicode("__code__"),
    b"C\x04\x89PNG", b"B\x02\x00\x00\x00xy", b"\x96\x03\x00\x00\x00\x00\x00\x00\x00abc",  # bytes/bytearray8
    b"\x97", b"\x98",  # NEXT_BUFFER, READONLY_BUFFER (no buffers given)
    b"N", b"\x88", b"\x89", b"K\x01", b"J\xff\xff\xff\x7f", b"\x8a\x09" + b"\xff" * 9, b"I01\n", b"L99999\n",
    b"G\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"(", b"t", b"\x85", b"\x86", b"\x87", b"]", b")", b"}", b"\x8f", b"a", b"e", b"s", b"u", b"\x90", b"l", b"d",
    b"R", b"b", b"\x81", b"\x92", b"o", b"i__builtin__\nbytes\n", b"0", b"1", b"2",
    b"q\x00", b"h\x00", b"h\x07", b"\x94", b"r\x00\x00\x00\x00", b"j\xff\x00\x00\x00", b"g0\n", b"p1\n",
    b"P1\n", b"Q", b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00",  # persistent ids, EXT codes
    b"\x95\x00\x00\x00\x00\x00\x00\x00\x00",  # FRAME
]
_ENC = b"c_codecs\nencode\n"
GADGETS = [  # multi-opcode pieces that do something: build bytes, call globals, BUILD on stand-ins
    _ENC + _unicode("abc") + _unicode("latin1") + b"\x86R",
    _ENC + _unicode("\u20ac") + _unicode("latin1") + _unicode("bogus") + b"\x87R",
    _ENC + _unicode("abc") + _unicode("zlib_codec") + b"\x86R",
    b"cbuiltins\nbytes\n" + b"C\x02ab\x85R", b"cbuiltins\nbytes\n" + b"J\xff\xff\xff\x7f\x85R",
    b"cbuiltins\nbytearray\n" + _unicode("xy") + _unicode("latin-1") + b"\x86R",
    b"cos\nsystem\n" + _unicode(_EVIL_CMD) + b"\x85R",
    b"cbuiltins\neval\n" + _unicode(f"open({str(MARKER)!r}, 'w').close()") + b"\x85R",
    b"csubprocess\ncall\n" + _unicode(_EVIL_CMD) + b"\x85R",
    _unicode("os") + _unicode("system") + b"\x93" + _unicode(_EVIL_CMD) + b"\x85R",
    _ENC + b"N}" + _unicode("__defaults__") + _unicode("latin1") + _unicode("strict") + b"\x86s\x86b",
    b"cbuiltins\nbytes\n" + b"N}" + _unicode("marker") + b"\x88s\x86b",
    _ENC + b"}" + _unicode("x") + b"K\x01sb",
    b"](" + b"".join(b"B" + struct.pack("<I", len(p)) + p for p in PNGS) + b"e",
    b"](" + b"".join(b"B" + struct.pack("<I", len(p)) + p for p in PNGS[:2]) + b"e",
    b"](\x88\x89e", b"](\x88e", b"]K\x01a",
    b"\x94", b"h\x00", b"h\x01",
]
EPILOGUES = [b".", b"]]\x86.", b"0]]\x86.", b"\x86.", b"](\x88\x89e\x86.", b""]


def test_fuzz_binfile_opcode_programs_never_run_globals():
    counter = Counter("binfile.opcode programs (globals, REDUCE, BUILD, memo, buffers)")
    polluted = []

    @fuzz(400)
    @given(ops=st.lists(st.one_of(st.sampled_from(OPCODES), st.sampled_from(GADGETS)), min_size=1, max_size=10),
           proto=st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]),
           ending=st.sampled_from(EPILOGUES))
    def run(ops, proto, ending):
        data = proto + b"".join(ops) + ending
        with time_limit():
            out = load_bin_outcome(data)
        assert not MARKER.exists(), f"a global ran: {data!r}"
        if _restore_stand_ins():
            polluted.append(data)
        assert not polluted, f"the pickle changed the unpickler's stand-ins: {data!r}"
        if out[0] == "ok":
            assert len(out[1]) == 2 * len(out[2])
        counter.add(out[0])

    try:
        run()
    finally:
        if MARKER.exists():
            MARKER.unlink()
    counter.report()
