"""SIGTERM outside g2d-train's training loop (whose graceful stop test_crash_safety.py covers):
every tool ends as on Ctrl-C, with a message and an exit code, after cleaning up, instead of
dying on the spot; g2d-train interrupted in its final evaluation says how to finish it, and the
same command does."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from insightface_g2d.training.config import load_config
from insightface_g2d.training.runner import run_training

from training_tools import one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT = {signal.SIGTERM: (143, "terminated (SIGTERM)"), signal.SIGINT: (130, "interrupted")}


def _run(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_final_evaluation_exits_with_a_message_and_the_run_finishes_later(tmp_path, sig):
    job = write_job(tmp_path, '[dict(name="base", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", '
                              'lr=1e-3, scale=16.0)]',
                    'config.eval = dict(enabled=True, pairs="synthetic:ids=8,per_id=4,seed=3,offset=1000", '
                    'num_pairs=40, batch_size=16)\n')
    out = tmp_path / "run"
    done = _run(f"""
        import os, signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even when
                                                                  # this test runs with SIGINT ignored
        import insightface_g2d.evaluation.engine as engine

        def evaluate_models(*args, **kwargs):  # the signal arrives while the evaluation runs
            os.kill(os.getpid(), {int(sig)})
            time.sleep(60)
            raise AssertionError("the signal did not stop the evaluation")

        engine.evaluate_models = evaluate_models
        from insightface_g2d.cli.common import run_cli
        from insightface_g2d.cli.train import main
        sys.exit(run_cli(main, [{str(job)!r}, "--output", {str(out)!r}, "--device", "cpu", "--threads", "1"]))
    """)
    code, message = EXIT[sig]
    assert done.returncode == code, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == message and "Traceback" not in done.stderr
    log = (out / "training.log").read_text()
    assert f"{signal.Signals(sig).name} during the evaluation: every stage and model.pt are saved; run the same " \
           f"command to evaluate: g2d-train {job}" in log
    assert (out / "model.pt").is_file() and not (out / "eval.json").exists()
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    # the same command finishes the run: the stage is not trained again, the evaluation is written
    summary = run_training(load_config(job), output=str(out))
    assert summary["status"] == "finished" and summary["stage_seconds"] == {} and (out / "eval.json").is_file()


def test_sigterm_in_the_middle_of_a_write_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out"
    done = _run(f"""
        import os, signal, sys, time
        import insightface_g2d.evaluation.binfile as binfile

        real_dump = binfile.pickle.dump

        def dump(obj, f, *args, **kwargs):  # half the .bin is in its temporary file when SIGTERM comes
            f.write(b"x" * 4096)
            f.flush()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)

        binfile.pickle.dump = dump
        from insightface_g2d.cli.common import run_cli
        from insightface_g2d.cli.evaluate import main
        sys.exit(run_cli(main, ["make-bin", "--dataset", "synthetic:ids=4,per_id=4", "--pairs", "8",
                                "--out", {str(out / 'heldout.bin')!r}]))
    """)
    assert done.returncode == 143, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "terminated (SIGTERM)"
    assert os.listdir(out) == []  # no .heldout.bin.<random>.tmp left behind


def test_sigterm_stays_ignored_when_the_tool_starts_with_it_ignored(tmp_path):
    """A launcher that ignores SIGTERM for its children keeps it ignored: run_cli installs nothing."""
    done = _run("""
        import os, signal, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        from insightface_g2d.cli.common import run_cli

        def main(argv):
            os.kill(os.getpid(), signal.SIGTERM)
            return 0 if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN else 1

        sys.exit(run_cli(main))
    """)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("module, argv", [
    ("evaluate", ["g2d-eval", "compare", "--help"]), ("cache", ["g2d-cache", "build", "--help"]),
    ("mask", ["g2d-mask", "apply", "--help"]), ("data", ["g2d-data", "bin", "--help"])],
    ids=["compare", "cache build", "mask apply", "data bin"])
def test_sigterm_after_the_last_line_still_gets_a_message_and_143(module, argv):
    """The interpreter's shutdown after a tool's last line takes a second with torch loaded; a SIGTERM
    landing then is handled like any other, not a silent death by signal (-15)."""
    done = _run(f"""
        import atexit, os, signal, sys, time

        def late():  # runs as the interpreter shuts down, after the tool has printed everything
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)

        atexit.register(late)
        sys.argv = {argv!r}
        from insightface_g2d.cli.{module} import entry
        entry()
    """)
    assert done.returncode == 143, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip().splitlines()[-1] == "terminated (SIGTERM)" and "usage:" in done.stdout
