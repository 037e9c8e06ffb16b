"""Crash-safe training: g2d-train killed again and again (SIGKILL at random steps, inside a
checkpoint write, before a checkpoint's rename, as a preview appears, as the evaluation starts;
SIGTERM and SIGINT), resumed each time, with an inpainting preview every step and the evaluation
on, ends with weights (and evaluation figures) equal to an uninterrupted run of the same seed on CPU.

The harness (tiny 4-stage config, kill hooks, comparison) is benchmarks/kill_resume.py; that
script also runs longer campaigns: `python benchmarks/kill_resume.py --kills 30`.
"""
import importlib.util
import signal
import threading
from pathlib import Path

import pytest
import torch

from insightface_g2d.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kill_resume", REPO / "benchmarks" / "kill_resume.py")
KR = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(KR)

STEPS = 4  # per stage; 4 stages


def _step_ckpt(out):
    return out / "checkpoint_gpu_0.pt"


def test_killed_and_resumed_training_equals_uninterrupted(tmp_path):
    config = KR.write_config(tmp_path, steps=STEPS)
    ref, out = tmp_path / "reference", tmp_path / "killed"
    reference = {}
    worker = threading.Thread(target=lambda: reference.update(result=KR.launch(config, ref)))
    worker.start()  # the uninterrupted run, alongside the killed ones (2 processes, 1 thread each)

    events = []

    # 1. SIGTERM: finish the step, save, exit 0, say how to resume
    rc, text, event = KR.launch(config, out, after_steps=2, send=signal.SIGTERM)
    assert event and rc == 0, text[-2000:]
    assert "Resume with the same command" in text and "stopped" in text
    stopped_at = load_checkpoint(_step_ckpt(out))
    assert stopped_at["stage"] == "baseline" and stopped_at["global_step"] >= 2
    events.append(event)

    # 2. SIGINT (Ctrl-C): as SIGTERM
    rc, text, event = KR.launch(config, out, after_steps=1, send=signal.SIGINT)
    assert event and rc == 0, text[-2000:]
    assert "Resume with the same command" in text
    events.append(event)

    # 3. SIGKILL from inside torch.save, half the checkpoint written: the previous file stays intact
    before = load_checkpoint(_step_ckpt(out))
    rc, text, _ = KR.launch(config, out, env={"G2D_KILL_IN_WRITE": "2"})
    event = KR._marker(text, "KILL-IN-WRITE")
    assert event and rc == -signal.SIGKILL, text[-2000:]
    partial = [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert partial, "the kill should have left the half-written temp file"
    after = load_checkpoint(_step_ckpt(out))  # still a whole, loadable checkpoint
    assert after["global_step"] >= before["global_step"] or after["stage"] != before["stage"]
    events.append(event)

    # 4. SIGKILL at a random step (whatever it was doing)
    rc, text, event = KR.launch(config, out, after_steps=3)
    assert event and rc == -signal.SIGKILL, text[-2000:]
    events.append(event)

    # 5. SIGKILL as soon as a checkpoint temp file appears (inside the write, most of the time)
    rc, text, event = KR.launch(config, out, on_temp=True)
    assert event and rc == -signal.SIGKILL, text[-2000:]
    events.append(event)

    # 6. SIGKILL just before a checkpoint is renamed into place
    rc, text, _ = KR.launch(config, out, env={"G2D_KILL_BEFORE_RENAME": "3"})
    event = KR._marker(text, "KILL-BEFORE-RENAME")
    assert event and rc == -signal.SIGKILL, text[-2000:]
    events.append(event)

    # 7. SIGKILL the moment a preview PNG appears (previews are written every step of inpaint)
    rc, text, event = KR.launch(config, out, on_preview=True)
    assert (event and rc == -signal.SIGKILL) or (rc == 0 and KR.finished(out)), text[-2000:]
    events += [event] if event else []

    # 8. SIGKILL as the evaluation starts (every stage finished, model.pt written)
    rc, text, event = KR.launch(config, out, on_eval=True)
    assert event and rc == -signal.SIGKILL, text[-2000:]
    events.append(event)

    # resume to the end
    for _ in range(2):
        if KR.finished(out):
            break
        rc, text, _ = KR.launch(config, out)
        assert rc == 0, text[-2000:]
    assert KR.finished(out), "resumed training did not finish"
    # the temporaries the kills left behind are removed when a run starts
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    worker.join(timeout=600)
    rc, text, _ = reference["result"]
    assert rc == 0 and KR.finished(ref), text[-2000:]
    diffs = KR.compare_outputs(ref, out)
    print(f"\nCRASH-SAFETY: {len(events)} interruptions survived, final weights equal: {not diffs}")
    for e in events:
        print("  ", e)
    assert diffs == [], f"resumed weights differ from the uninterrupted run: {diffs[:5]}"
    # the comparison is not vacuous: every stage file and model.pt hold tensors
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert len(model) > 10 and sorted(p.name for p in out.glob("stage_*.pt")) == [
        "stage_baseline.pt", "stage_classify.pt", "stage_inpaint.pt", "stage_reform.pt"]


def test_comparison_detects_a_changed_weight(tmp_path):
    """compare_outputs must notice a one-ulp change (so equality above means something)."""
    from insightface_g2d.training.checkpoint import atomic_save

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        atomic_save({"modules": {"head": {"w": torch.ones(3)}}}, d / "stage_x.pt")
        atomic_save({"w": torch.zeros(2)}, d / "model.pt")
    assert KR.compare_outputs(a, b) == []
    atomic_save({"modules": {"head": {"w": torch.nextafter(torch.ones(3), torch.full((3,), 2.0))}}}, b / "stage_x.pt")
    assert KR.compare_outputs(a, b) == ["stage_x.pt:head.w"]


@pytest.mark.parametrize("junk", [b"", b"PK\x03\x04 not a zip", b"\x80\x02}q\x00.", b"\x00" * 64])
def test_corrupt_step_checkpoint_is_a_clear_error(tmp_path, junk):
    """A damaged checkpoint_gpu_0.pt (disk full, copied half) -> CheckpointError, not a traceback."""
    from insightface_g2d.errors import CheckpointError

    (tmp_path / "checkpoint_gpu_0.pt").write_bytes(junk)
    with pytest.raises(CheckpointError, match="checkpoint_gpu_0.pt"):
        load_checkpoint(tmp_path / "checkpoint_gpu_0.pt")
