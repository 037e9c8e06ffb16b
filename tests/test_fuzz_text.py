"""Fuzzing the text readers: pairs lists (insightface_g2d.evaluation.pairs.read_pairs, LFW and
generic layouts) and landmark TSVs (insightface_g2d.data.align.read_landmarks_tsv).

Valid files are generated at random and must parse exactly (a round trip against the generator's
own record of what it wrote). Then one line is replaced by random text, inserted or deleted, or
the whole file is random text/bytes. Every outcome must be the parse or a DataError, never another
exception or a hang; and a parse that succeeds must be honest about the lines nobody touched:
* pairs: the pairs of the untouched lines come back unchanged and in order, and at most one pair
  stands where the edited line was (a changed line may well be a different valid pair);
* landmarks: every untouched entry comes back with the same path and coordinates; the edited line
  adds at most one entry, with finite coordinates.
"""
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from insightface_g2d.data.align import read_landmarks_tsv
from insightface_g2d.errors import DataError
from insightface_g2d.evaluation.pairs import read_pairs
from test_fuzz_support import Counter, fuzz, time_limit

# characters str.splitlines() breaks on: a replacement line must not contain them
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ_-", min_size=1, max_size=10)
LINE_TEXT = st.text(st.characters(blacklist_characters=LINE_BREAKS, blacklist_categories=("Cs",)), max_size=40)


def _outcome(fn):
    try:
        return True, fn()
    except DataError:
        return False, None


def _write(tmp, text, name="pairs.txt"):
    path = Path(tmp) / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ pairs
@st.composite
def lfw_pairs_file(draw):
    """(lines, header_lines, pairs): an LFW-layout file and, per line, the pair it holds."""
    header_kind = draw(st.sampled_from(["folds", "count", "none"]))
    k, per = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n_match = k * per if header_kind == "folds" else draw(st.integers(1, 6))
    sep = draw(st.sampled_from(["\t", " "]))
    lines, pairs = [], []

    def matched():
        name, a, b = draw(NAMES), draw(st.integers(1, 9999)), draw(st.integers(1, 9999))
        lines.append(sep.join([name, str(a), str(b)]))
        pairs.append((f"{name}/{name}_{a:04d}.jpg", f"{name}/{name}_{b:04d}.jpg", True))

    def mismatched():
        n1, a, n2, b = draw(NAMES), draw(st.integers(1, 9999)), draw(NAMES), draw(st.integers(1, 9999))
        lines.append(sep.join([n1, str(a), n2, str(b)]))
        pairs.append((f"{n1}/{n1}_{a:04d}.jpg", f"{n2}/{n2}_{b:04d}.jpg", False))

    if header_kind == "folds":
        header = [f"{k}\t{per}"]
        for _ in range(k):
            for _ in range(per):
                matched()
            for _ in range(per):
                mismatched()
    else:
        header = [str(n_match)] if header_kind == "count" else []
        for _ in range(n_match):
            matched()
        for _ in range(n_match):
            mismatched()
    return header, lines, pairs


@st.composite
def generic_pairs_file(draw):
    sep = draw(st.sampled_from(["\t", ",", " "]))
    with_folds = draw(st.booleans())
    lines, pairs = [], []
    for _ in range(draw(st.integers(1, 8))):
        a = "/".join(draw(st.lists(NAMES, min_size=1, max_size=2))) + draw(st.sampled_from([".jpg", ".png"]))
        b = "/".join(draw(st.lists(NAMES, min_size=1, max_size=2))) + ".jpg"
        same = draw(st.booleans())
        label = draw(st.sampled_from(["1", "true", "same"] if same else ["0", "false", "diff"]))
        fields = [a, b, label] + ([str(draw(st.integers(0, 9)))] if with_folds else [])
        lines.append(sep.join(fields))
        pairs.append((a, b, same))
    header = ["path1,path2,label" + (",fold" if with_folds else "")] if sep == "," and draw(st.booleans()) else []
    return header, lines, pairs


# header-like and fold-like lines: small, negative and past-int64 numbers
BIG_OR_SMALL = st.one_of(st.integers(-3, 4), st.integers(2**63 - 2, 2**70)).map(str)
HEADERISH = st.one_of(
    st.lists(BIG_OR_SMALL, min_size=1, max_size=2).map("\t".join),
    st.tuples(NAMES, NAMES, st.sampled_from(["1", "0"]), BIG_OR_SMALL).map(lambda t: f"{t[0]}.jpg\t{t[1]}.jpg\t{t[2]}\t{t[3]}"),
)
def _pairs_of(result):
    return [(result.paths[2 * i], result.paths[2 * i + 1], bool(result.issame[i])) for i in range(len(result))]


def _check_invariants(result):
    assert len(result.paths) == 2 * len(result.issame) and result.issame.dtype == bool
    assert all(isinstance(p, str) and p for p in result.paths)
    if result.folds is not None:
        assert len(result.folds) == len(result.issame) and np.asarray(result.folds).dtype.kind == "i"


def test_fuzz_pairs_round_trip_and_line_edits():
    counter = Counter("pairs.read_pairs (LFW + generic, round trip + one-line edits)")

    @fuzz(300)
    @given(f=st.one_of(lfw_pairs_file(), generic_pairs_file()), edit=st.sampled_from(["none", "replace", "insert", "delete"]),
           where=st.floats(0, 1, exclude_max=True),
           text=st.one_of(LINE_TEXT, HEADERISH, st.lists(st.one_of(NAMES, st.integers(-10**20, 10**20).map(str),
                                                         st.sampled_from(["1", "0", "same", "-1", "#", "x.jpg", ""])),
                                              max_size=5).flatmap(lambda t: st.sampled_from(["\t", " ", ","]).map(lambda s: s.join(t)))))
    def run(f, edit, where, text):
        header, lines, pairs = f
        all_lines = header + lines
        j = int(where * len(all_lines))
        pair_index = j - len(header)  # index into pairs of the edited line (negative: the header)
        if edit == "replace":
            all_lines[j] = text
        elif edit == "insert":
            all_lines.insert(j, text)
        elif edit == "delete":
            del all_lines[j]
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            path = _write(tmp, "\n".join(all_lines) + "\n")
            ok, result = _outcome(lambda: read_pairs(path))
        if edit == "none":
            assert ok, "a valid pairs file was refused"
            assert _pairs_of(result) == pairs
            counter.add("round-trip")
            return
        if not ok:
            counter.add("refused")
            return
        _check_invariants(result)
        got = _pairs_of(result)
        if pair_index < 0:  # header edited/inserted before it: every pair line is untouched
            before, after = [], pairs
        else:
            before = pairs[:pair_index]
            after = pairs[pair_index + (0 if edit == "insert" else 1):]
        assert got[:len(before)] == before, "pairs before the edited line changed"
        assert got[len(got) - len(after):] == after, "pairs after the edited line changed"
        assert len(before) + len(after) <= len(got) <= len(before) + len(after) + 1
        counter.add("parsed")

    run()
    counter.report()


def test_fuzz_pairs_random_text_and_bytes():
    counter = Counter("pairs.read_pairs (random text / bytes)")

    @fuzz(200)
    @given(data=st.one_of(st.binary(max_size=200),
                          st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                          st.lists(st.one_of(HEADERISH, st.lists(st.one_of(NAMES, st.integers(-5, 10**25).map(str)),
                                                                   max_size=5).map("\t".join)),
                                   max_size=6).map(lambda ls: "\n".join(ls).encode())),
           layout=st.sampled_from(["auto", "lfw", "generic"]))
    def run(data, layout):
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pairs.txt"
            path.write_bytes(data)
            ok, result = _outcome(lambda: read_pairs(path, layout=layout))
        if ok:
            _check_invariants(result)
        counter.add("parsed" if ok else "refused")

    run()
    counter.report()


# ------------------------------------------------------------------------------------- landmarks
COLUMNS = ["x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4", "x5", "y5"]
COORD = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@st.composite
def landmarks_file(draw):
    cols = ["path"] + COLUMNS + (["source"] if draw(st.booleans()) else [])
    if draw(st.booleans()):
        cols = draw(st.permutations(cols))
    paths = draw(st.lists(st.lists(NAMES, min_size=1, max_size=2).map("/".join).map(lambda p: p + ".jpg"),
                          min_size=1, max_size=6, unique=True))
    lines, entries = ["\t".join(cols)], {}
    for p in paths:
        xy = [draw(COORD) for _ in COLUMNS]
        row = {"path": p, "source": "retinaface", **{c: repr(v) for c, v in zip(COLUMNS, xy)}}
        lines.append("\t".join(row[c] for c in cols))
        entries[p] = np.asarray(xy, np.float32).reshape(5, 2)
    return lines, entries


def test_fuzz_landmarks_round_trip_and_line_edits():
    counter = Counter("align.read_landmarks_tsv (round trip + one-line edits)")

    @fuzz(300)
    @given(f=landmarks_file(), edit=st.sampled_from(["none", "replace", "insert", "delete", "field"]),
           where=st.floats(0, 1, exclude_max=True), text=LINE_TEXT,
           field=st.one_of(st.sampled_from(["nan", "inf", "-inf", "", " ", "1e999", "0x10", "1_0", "١٢"]), LINE_TEXT))
    def run(f, edit, where, text, field):
        lines, entries = f
        lines = list(lines)
        j = int(where * len(lines))
        touched = None
        if edit == "replace":
            touched = lines[j]
            lines[j] = text
        elif edit == "insert":
            lines.insert(j, text)
        elif edit == "delete":
            touched = lines[j]
            del lines[j]
        elif edit == "field":
            fields = lines[j].split("\t")
            fields[hash(text) % len(fields)] = field
            touched = lines[j]
            lines[j] = "\t".join(fields)
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            path = _write(tmp, "\n".join(lines) + "\n", "landmarks.tsv")
            ok, got = _outcome(lambda: read_landmarks_tsv(path))
        if edit == "none":
            assert ok and set(got) == set(entries)
            assert all(np.array_equal(got[p], entries[p]) for p in entries)
            counter.add("round-trip")
            return
        if not ok:
            counter.add("refused")
            return
        for p, xy in got.items():
            assert xy.shape == (5, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
        if j == 0 and edit != "insert":  # header edited: column meaning may change; shapes checked above
            counter.add("parsed-header-edited")
            return
        untouched = {p: xy for p, xy in entries.items() if touched is None or not touched.startswith(p + "\t")
                     and ("\t" + p + "\t") not in touched and not touched.endswith("\t" + p)}
        for p, xy in untouched.items():
            assert p in got and np.array_equal(got[p], xy), f"untouched entry {p!r} changed or vanished"
        assert len(got) <= len(untouched) + 1
        counter.add("parsed")

    run()
    counter.report()


def test_fuzz_landmarks_random_text_and_bytes():
    counter = Counter("align.read_landmarks_tsv (random text / bytes)")
    header = "path\t" + "\t".join(COLUMNS)

    @fuzz(200)
    @given(data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(st.lists(st.one_of(NAMES, st.floats().map(repr), st.sampled_from(["nan", "", "1e400"])),
                          min_size=0, max_size=13).map("\t".join), max_size=5).map(
            lambda ls: ("\n".join([header] + ls)).encode())))
    def run(data):
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "landmarks.tsv"
            path.write_bytes(data)
            ok, got = _outcome(lambda: read_landmarks_tsv(path))
        if ok:
            assert all(v.shape == (5, 2) and np.isfinite(v).all() for v in got.values())
            assert all(math.isfinite(float(c)) for v in got.values() for c in v.ravel())
        counter.add("parsed" if ok else "refused")

    run()
    counter.report()


# -------------------------- inputs the fuzzers once found raising other errors, as regression tests
def test_negative_header_is_refused(tmp_path):
    path = _write(tmp_path, "-1\t-1\nname 1 2\nother 1 third 2\n")
    with pytest.raises(DataError):
        read_pairs(path)


def test_fold_past_int64_is_refused(tmp_path):
    path = _write(tmp_path, "a.jpg\tb.jpg\t1\t99999999999999999999\n")
    with pytest.raises(DataError):
        read_pairs(path)
