"""Writing files so that a crash or a full disk never leaves a half-written one behind."""
import os
import tempfile
from contextlib import contextmanager


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path, mode="wb", suffix=".tmp", **open_kwargs):
    """Open a temporary file `.<name>.<random><suffix>` beside `path`; on a clean exit flush,
    fsync and `os.replace` it over `path`, on an error delete it.

    Readers see the old file or the new one, never half of one. The file gets the permission bits
    of the file it replaces, or those of a plain `open()` for a new file (mkstemp's are 0600).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        mode_bits = os.stat(path).st_mode & 0o7777 if os.path.isfile(path) else 0o666 & ~_umask()
        os.chmod(tmp, mode_bits)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
