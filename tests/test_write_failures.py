"""Failed writes in every tool that writes files (g2d-train's own are in test_output_folder.py):
a full disk, a read-only file system, a file-size limit. Each must end in one line on stderr,
exit code 2, naming the file, the reason and what to do, and leave nothing half-written.

How the failures are made, since the tests run as root (chmod cannot make a folder read-only for
root) on a machine where no small or read-only file system can be mounted:
- a real failure from the kernel: RLIMIT_FSIZE (`ulimit -f`) in a child process makes write(2)
  fail with EFBIG past 1 KiB, whichever library does the writing (torch, numpy, matplotlib,
  OpenCV, onnx), mid-file;
- ENOSPC and EROFS: os.open, os.mkdir and open() refuse to create or open for writing anything
  inside the output folder with that errno, as the kernel does on a full (no free blocks or
  inodes) or read-only file system. Reading stays possible, as it does there.
"""
import builtins
import errno
import io
import json
import os
import subprocess
import sys

import pytest

from insightface_g2d.cli.common import run_cli

from output_tools import TOOLS, make_inputs, tool_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
REASONS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
           errno.EFBIG: "file too large"}
OPTION = {"recordio-index": "--idx"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def _inside(path, root, dir_fd=None):
    if isinstance(path, int):
        return False
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    path = os.path.abspath(path)
    return path == root or path.startswith(root + os.sep)


def refuse_writes_inside(monkeypatch, root, code):
    """Creating, or opening for writing, any file or folder inside `root` fails with `code`."""
    root = os.path.abspath(os.fspath(root))
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def fail(path):
        raise OSError(code, os.strerror(code), os.fspath(path))

    def os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & writing and _inside(path, root, dir_fd):
            fail(path)
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if _inside(path, root, dir_fd):
            fail(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and _inside(file, root):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


def leftovers(out):
    """Temporary or partial files and folders under `out` (relative paths)."""
    found = []
    for folder, dirs, files in os.walk(out):
        for name in dirs + files:
            if name.startswith(".") or name.endswith((".tmp", ".partial")):
                found.append(os.path.relpath(os.path.join(folder, name), out))
    return sorted(found)


def check_one_line(tool, rc, stderr, code, out):
    assert rc == 2 and "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]  # progress bars may come before it
    assert last.startswith(f"error: cannot write ") and f"'{out}" in last, last
    assert REASONS[code] in last and OPTION.get(tool, "--out") in last, last


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["ENOSPC", "EROFS"])
@pytest.mark.parametrize("tool", TOOLS)
def test_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(tool, code, inputs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    main, argv = tool_run(tool, inputs, out)
    refuse_writes_inside(monkeypatch, out, code)
    try:
        rc = run_cli(main, argv)
    finally:
        monkeypatch.undo()
    check_one_line(tool, rc, capsys.readouterr().err, code, out)
    assert os.listdir(out) == []


DRIVER = """
import contextlib, io, json, os, resource, signal, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import matplotlib.figure, onnx  # noqa: F401  (imported before the limit: their caches are no output)
from insightface_g2d.cli.common import run_cli
from output_tools import TOOLS, tool_run

inputs = json.loads({inputs!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write(2) past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
results = {{}}
for name in TOOLS:
    out = os.path.join({root!r}, name)
    os.makedirs(out)
    main, argv = tool_run(name, inputs, out)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = run_cli(main, argv)
        except BaseException as exc:  # the old code's tracebacks, reported for every tool
            import traceback
            rc = -1
            err.write(traceback.format_exc())
    results[name] = [rc, err.getvalue()]
print(json.dumps(results))
"""


def test_a_file_size_limit_from_the_kernel_is_one_line_and_leaves_nothing(inputs, tmp_path):
    """Every tool in one child process under `ulimit -f 1` (1 KiB): real EFBIG from write(2)."""
    code = DRIVER.format(tests=TESTS, inputs=json.dumps(inputs), root=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS])))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for tool in TOOLS:
        rc, stderr = results[tool]
        out = tmp_path / tool
        check_one_line(tool, rc, stderr, errno.EFBIG, out)
        assert leftovers(out) == [], (tool, leftovers(out))
