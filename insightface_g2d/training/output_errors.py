"""Write failures in a run's output folder (disk full, read-only, permissions, a name taken by the
wrong kind of file) as one-line OutputErrors that say what failed and what to do, instead of
tracebacks."""
import errno
import os
from contextlib import contextmanager

from ..errors import OutputError

_REASONS = {
    errno.ENOSPC: ("no space left on the device", "free some space or pass another --output"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or pass another --output"),
    errno.EROFS: ("the file system is read-only", "pass a writable --output"),
    errno.EACCES: ("permission denied", "pass an --output folder you can write to"),
    errno.EPERM: ("operation not permitted", "pass an --output folder you can write to"),
    errno.EFBIG: ("file too large for the file system or the process limit (ulimit -f)",
                  "raise the limit or pass another --output"),
    errno.EISDIR: ("a folder is in the way", "move it away or pass another --output"),
    errno.ENOTDIR: ("a file is in the way where a folder is needed", "move it away or pass another --output"),
    errno.EEXIST: ("a file is in the way where a folder is needed", "move it away or pass another --output"),
    errno.ENAMETOOLONG: ("the path is too long", "pass a shorter --output"),
    errno.EIO: ("input/output error from the device", "check the disk, then resume"),
}
IO_ERRNOS = frozenset(_REASONS)


def write_error(err, path=None, what=""):
    """OutputError for an OSError raised while writing `path` (`what`: e.g. "lock file", or "")."""
    path = path or err.filename or "?"
    reason, advice = _REASONS.get(err.errno, (err.strerror or str(err), "check the output folder"))
    what = f"{what} " if what else ""
    return OutputError(f"cannot write {what}{os.fspath(path)!r}: {reason}; {advice} (nothing written so far "
                       "is damaged: checkpoints are replaced atomically)")


def os_error_in(exc):
    """The OSError that caused `exc` (itself, or one in its __cause__/__context__ chain), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def write_errors(output):
    """Turn OSErrors of writes inside `output` (and torch.save's RuntimeErrors caused by one) into
    OutputErrors. Errors about files elsewhere pass through unchanged."""
    root = os.path.abspath(os.fspath(output))
    try:
        yield
    except (OSError, RuntimeError) as exc:
        err = os_error_in(exc)
        if err is None or err.errno not in IO_ERRNOS:
            raise
        name = err.filename
        if name is not None and not _related(os.path.abspath(os.fspath(name)), root):
            raise
        raise write_error(err, name or output) from None


def _related(path, root):
    """`path` is `root`, inside it, or one of the folders above it (made by os.makedirs)."""
    return path == root or path.startswith(root + os.sep) or root.startswith(path.rstrip(os.sep) + os.sep)
