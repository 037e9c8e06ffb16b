"""Fuzzing the reader of dlib's model files (backbones/dlib_format.py through read_dlib_resnet):
seeded mutations of a whole model written here (test_dlib_format.write_model). Most mutations land
on the file's structure (the integers that give versions, tags, lengths, shapes and float
exponents), where a wrong value could ask for memory or loop: a byte flipped or overwritten, an
integer rewritten to a random, huge or negative value, bytes inserted or deleted, the file cut or
extended. Every outcome must be the state dict or a CheckpointError, never another exception, a
hang (time_limit) or an allocation over 1 GB (the process's peak resident memory)."""
import resource
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from insightface_g2d.backbones.dlib_format import DlibStream
from insightface_g2d.backbones.dlib_resnet import DlibResNet, _parse, read_dlib_resnet
from insightface_g2d.errors import CheckpointError
from test_dlib_format import enc_int, write_model
from test_fuzz_support import Counter, fuzz, time_limit

GB = 1 << 30


class _Recorder(DlibStream):
    """A stream that notes where every integer starts: the structure of the file."""

    def __init__(self, data):
        super().__init__(data)
        self.starts = []

    def integer(self):
        self.starts.append(self.pos)
        return super().integer()


def _valid_model():
    data = write_model(DlibResNet().state_dict())
    recorder = _Recorder(data)
    _parse(recorder)
    return data, sorted(set(recorder.starts))


MODEL, STARTS = _valid_model()
COUNTER = Counter("dlib model file")


INTEGERS = st.one_of(st.integers(-300, 40000), st.integers(-(1 << 63), 1 << 63),
                     st.sampled_from([0, -1, 5000, 32000, 32001, 32002, 1 << 40, (1 << 64) - 1]))
# A mutation: (kind, where, value). Drawn small and applied in the test (hypothesis keeps what it
# draws: 22 MB copies of the model would be its memory, not the reader's).
MUTATION = st.tuples(
    st.sampled_from(["flip", "overwrite", "integer", "integer", "insert", "delete", "cut", "extend"]),
    st.one_of(st.sampled_from(STARTS), st.integers(0, len(MODEL) - 1)),
    st.one_of(st.integers(0, 7), INTEGERS, st.binary(min_size=1, max_size=64)))


def apply(mutations):
    data = bytearray(MODEL)
    for kind, at, value in mutations:
        if not data:
            break
        at = min(at, len(data) - 1)
        raw = value if isinstance(value, bytes) else bytes([abs(value) % 256])
        if kind == "flip":
            data[at] ^= 1 << (abs(value) % 8 if isinstance(value, int) else 0)
        elif kind == "overwrite":
            data[at:at + min(4, len(raw))] = raw[:4]
        elif kind == "integer":  # the integer there replaced by another, of any size and sign
            size = (data[at] & 0x0F) + 1 if data[at] & 0x0F <= 8 else 1
            data[at:at + size] = enc_int(value if isinstance(value, int) else int.from_bytes(raw[:8], "little"))
        elif kind == "insert":
            data[at:at] = raw[:8]
        elif kind == "delete":
            del data[at:at + 1 + len(raw) % 8]
        elif kind == "cut":
            del data[at:]
        else:
            data += raw
    return bytes(data)


@fuzz(150)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_fuzz_dlib_model_file(mutations):
    COUNTER.start()
    with tempfile.TemporaryDirectory() as tmp, time_limit():
        path = Path(tmp) / "model.dat"
        path.write_bytes(apply(mutations))
        try:
            state = read_dlib_resnet(path)
        except CheckpointError as err:
            assert "\n" not in str(err)
            COUNTER.add("refused")
            return
        assert set(state) == set(DlibResNet().state_dict())
        COUNTER.add("read")


def test_fuzz_dlib_model_file_report():
    """Runs after the campaign (file order): the counts, and the process's peak memory."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    COUNTER.report()
    assert COUNTER.n > 0 and peak - COUNTER.baseline < GB, f"peak resident memory {peak / GB:.2f} GB"
