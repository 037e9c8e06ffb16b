"""The output folder: one run at a time (lock with PID and host, stale locks taken over), names in
the way, write failures, and refusals that leave nothing behind."""
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.train import main
from insightface_g2d.errors import OutputError
from insightface_g2d.training.config import load_config
from insightface_g2d.training.lock import LOCK_NAME, OutputLock
from insightface_g2d.training.runner import run_training

from training_tools import one_thread, write_job
from trust_tools import quad_kind  # noqa: F401  (the fixture registering the quad stage kind)

_threads = pytest.fixture(autouse=True)(one_thread)
pytestmark = pytest.mark.usefixtures("quad_kind")
QUAD = '[dict(name="q", kind="quad", steps=2)]'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _holder(folder):
    """A separate process that takes the lock of `folder` and waits; returns it once it holds it."""
    code = textwrap.dedent(f"""
        import sys, time
        from insightface_g2d.training.lock import OutputLock
        OutputLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_is_refused_naming_the_holder_then_takes_over_a_killed_ones_lock(tmp_path, capsys):
    job = write_job(tmp_path, QUAD)
    out = tmp_path / "run"
    out.mkdir()
    holder = _holder(out)
    try:
        code = run_cli(main, [str(job), "--output", str(out), "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "Traceback" not in err
        line = err.splitlines()[-1]
        assert line.startswith("error: output folder") and "is in use by g2d-train" in line
        assert f"PID {holder.pid} on host {socket.gethostname()}" in line and "another --output" in line
        assert sorted(os.listdir(out)) == [LOCK_NAME]  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: it never releases the lock file's content
        holder.wait()
    summary = run_training(load_config(job), output=str(out))
    assert summary["status"] == "finished"
    log = (out / "training.log").read_text()
    assert f"took over the lock of g2d-train PID {holder.pid} on host {socket.gethostname()}" in log
    # released at the end: the next run starts without a takeover note
    run_training(load_config(job), output=str(out))
    assert (out / "training.log").read_text().count("took over the lock") == 1


def test_deleting_the_lock_file_does_not_let_a_second_run_in(tmp_path, capsys):
    """The lock is held on the folder itself: removing .g2d-train.lock while a run holds it changes nothing."""
    job = write_job(tmp_path, QUAD)
    out = tmp_path / "run"
    out.mkdir()
    holder = _holder(out)
    try:
        os.unlink(out / LOCK_NAME)
        code = run_cli(main, [str(job), "--output", str(out), "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "Traceback" not in err
        line = err.splitlines()[-1]
        assert line.startswith("error: output folder") and "is in use by another process" in line
        assert os.listdir(out) == []  # the refused run wrote nothing, not even a new lock file
        with pytest.raises(OutputError, match="is in use by another process"):
            OutputLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run_training(load_config(job), output=str(out))["status"] == "finished"  # free again once it ended
    with OutputLock(out):  # within one process too
        os.unlink(out / LOCK_NAME)
        with pytest.raises(OutputError, match="is in use by another process"):
            OutputLock(out).acquire()


def test_the_lock_excludes_within_one_process_too(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputError, match=f"PID {os.getpid()}"):
            OutputLock(tmp_path).acquire()
    with OutputLock(tmp_path) as again:
        assert not again.stale  # released cleanly above


@pytest.mark.parametrize("name,make", [("previews", "file"), ("config.json", "folder"),
                                       ("stage_q.pt", "folder"), ("training.log", "folder")])
def test_a_name_in_the_way_is_one_line_before_anything_is_written(tmp_path, capsys, name, make):
    job = write_job(tmp_path, QUAD)
    out = tmp_path / "run"
    out.mkdir()
    if make == "file":
        (out / name).write_text("x")
    else:
        (out / name).mkdir()
    code = run_cli(main, [str(job), "--output", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and name in err and "move it away or pass another --output" in err
    assert sorted(os.listdir(out)) == [name]


def test_output_that_is_a_file(tmp_path, capsys):
    job = write_job(tmp_path, QUAD)
    (tmp_path / "out").write_text("x")
    assert run_cli(main, [str(job), "--output", str(tmp_path / "out" / "sub"), "--device", "cpu"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_failed_write_is_one_line_with_what_and_what_to_do(tmp_path):
    """A real write failure from the kernel: a file-size limit (ulimit -f) smaller than a checkpoint."""
    job = write_job(tmp_path, '[dict(name="base", kind="arcface", network="g2d_t", steps=3)]',
                    "config.checkpoint_every = 1\n")
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))
        from insightface_g2d.cli.common import run_cli
        from insightface_g2d.cli.train import main
        sys.exit(run_cli(main, [{str(job)!r}, "--output", {str(tmp_path / 'run')!r}, "--device", "cpu",
                                "--threads", "1"]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert last.startswith("error: cannot write '") and "checkpoint_gpu_0.pt" in last
    assert "file too large" in last and "raise the limit or pass another --output" in last
    assert not [n for n in os.listdir(tmp_path / "run") if n.endswith(".tmp")]  # no half file left


def test_refused_at_validation_leaves_no_files(tmp_path):
    job = write_job(tmp_path, QUAD, "config.eval = dict(enabled=True, pairs=None)\n")
    out = tmp_path / "run"
    with pytest.raises(Exception, match="config.eval.enabled needs config.eval.pairs"):
        run_training(load_config(job), output=str(out))
    assert not out.exists()
    run_training(load_config(job), output=str(out), evaluate=False)  # --no-eval: nothing to check
    assert (out / "stage_q.pt").is_file()


def test_config_and_summary_replace_a_symlink_instead_of_writing_through_it(tmp_path):
    job = write_job(tmp_path, QUAD)
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for name in ("config.json", "run_summary.json"):
        os.symlink(victim, out / name)
    run_training(load_config(job), output=str(out))
    assert victim.read_text() == "keep me"
    assert not (out / "config.json").is_symlink() and '"rec"' in (out / "config.json").read_text()
    assert '"finished"' in (out / "run_summary.json").read_text()


def test_an_unwritable_place_is_one_line(tmp_path, capsys):
    """A real refusal by the kernel: creating a folder in sysfs (EPERM even for root)."""
    target = "/sys/g2d_no_such_folder/run"
    try:
        os.mkdir("/sys/g2d_no_such_folder")
    except OSError:
        pass
    else:  # pragma: no cover - a system where sysfs is writable
        os.rmdir("/sys/g2d_no_such_folder")
        pytest.skip("sysfs is writable here")
    job = write_job(tmp_path, QUAD)
    assert run_cli(main, [str(job), "--output", target, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: cannot write '/sys/g2d_no_such_folder'")
    assert "pass an --output folder you can write to" in err
