"""Writing output files: never half a file, never through a symbolic link, one-line errors.

    atomic_open(path)      a temporary file beside `path`, renamed over it when complete
    open_file(path, flags) os.open for files written in place (logs, the lock file)
    open_folder(folder)    a descriptor of an output folder, made when missing
    write_errors(target)   OSErrors of writes to `target` (disk full, read-only, ...) as OutputErrors

Symbolic links: whatever these functions write goes to the name given, never to what a link there
points to. A link in place of an output file, or of a folder a tool makes inside the folder the
user named (`within`), is replaced by the file or folder itself; what it points to is not touched.
The folder the user named may itself be a link (that is the user's choice, and is followed).
"""
import errno
import os
import secrets
import stat
from contextlib import contextmanager

from .errors import OutputError

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_link(name, dir_fd):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _named(err, path, *names):
    """`err` with `path` as its file name when it has none or one of `names` (names relative to a
    folder descriptor, which say little in a message)."""
    if err.filename is None or err.filename in names:
        err.filename = path
    return err


def _open_child_folder(parent_fd, name, path):
    """Descriptor of folder `name` inside `parent_fd`, made when missing; a link there is replaced."""
    try:
        for _ in range(10):  # each round loses at most one race with another process changing `name`
            try:
                return os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=parent_fd)
            except FileNotFoundError:
                try:
                    os.mkdir(name, 0o777, dir_fd=parent_fd)
                except FileExistsError:
                    pass
            except OSError as err:
                if err.errno not in (errno.ENOTDIR, errno.ELOOP) or not _is_link(name, parent_fd):
                    raise  # a file is in the way (ENOTDIR), or another failure
                os.unlink(name, dir_fd=parent_fd)  # the link itself, never what it points to
        raise OSError(errno.EAGAIN, "the folder keeps changing while it is made", path)
    except OSError as err:
        raise _named(err, path, name) from None


def open_folder(folder, within=None):
    """A read-only descriptor of `folder`, made (with its parents) when missing; close it when done.

    `within`: the folder the user named (default: `folder` itself). It is followed if it is a
    link; every folder below it is one a tool makes, and a symbolic link in place of one is
    replaced by a real folder, so nothing is ever written into what the link points to.
    """
    folder = os.path.abspath(os.fspath(folder))
    top = folder if within is None else os.path.abspath(os.fspath(within))
    rel = os.path.relpath(folder, top)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ValueError(f"{folder!r} is not inside {top!r}")
    os.makedirs(top, exist_ok=True)
    fd = os.open(top, _DIR_FLAGS)
    path = top
    try:
        for name in ([] if rel == os.curdir else rel.split(os.sep)):
            path = os.path.join(path, name)
            child = _open_child_folder(fd, name, path)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path, flags, mode=0o666, within=None):
    """os.open(`path`, `flags`) in a folder made as open_folder(dirname, within) makes it, never
    through a symbolic link: with os.O_CREAT, a link at `path` is replaced by a new file; without
    it, a link is refused (ELOOP). Returns the file descriptor."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    dir_fd = open_folder(folder, within)
    try:
        for _ in range(10):
            try:
                return os.open(name, flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=dir_fd)
            except OSError as err:
                if not (flags & os.O_CREAT) or err.errno != errno.ELOOP or not _is_link(name, dir_fd):
                    raise
                os.unlink(name, dir_fd=dir_fd)  # the link itself, never what it points to
        raise OSError(errno.EAGAIN, "the file keeps changing while it is opened", path)
    except OSError as err:
        raise _named(err, path, name) from None
    finally:
        os.close(dir_fd)


def _new_temp(dir_fd, name, suffix, path):
    """(temporary name `.<name>.<random><suffix>`, descriptor) of a new file, mode 0600, beside
    `path` (what an error names)."""
    while True:
        tmp = f".{name}.{secrets.token_hex(4)}{suffix}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600,
                                dir_fd=dir_fd)
        except FileExistsError:
            continue
        except OSError as err:
            raise _named(err, path, tmp) from None


def _mode_bits(name, dir_fd):
    """Permission bits of the regular file `name` replaces, or those of a plain open() for a new one."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return st.st_mode & 0o7777
    return 0o666 & ~_umask()


@contextmanager
def atomic_open(path, mode="wb", suffix=".tmp", within=None, **open_kwargs):
    """Open a temporary file `.<name>.<random><suffix>` beside `path`; on a clean exit flush,
    fsync and rename it over `path`, on an error delete it.

    Readers see the old file or the new one, never half of one. A symbolic link at `path` is
    replaced, not written through; folders are made as `open_folder(dirname, within)` makes them.
    The file gets the permission bits of the file it replaces, or those of a plain `open()` for a
    new file. An OSError names `path` (or the folder that could not be made).
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    dir_fd = open_folder(folder, within)
    tmp = None
    try:
        tmp, fd = _new_temp(dir_fd, name, suffix, path)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _mode_bits(name, dir_fd))
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        tmp = None
    except OSError as err:
        raise _named(err, path, name, tmp)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        os.close(dir_fd)


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file at `path` (hashlib's `algorithm`), read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_folder_beside(path, tag="partial"):
    """A new, empty folder next to `path` (same file system: `replace_folder` moves it there), named
    after it and unique, with the permissions a plain mkdir gives (not mkdtemp's private 0700)."""
    import tempfile

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(path))}.{tag}-")
    os.chmod(folder, 0o777 & ~_umask())
    return folder


def replace_folder(tmp, folder):
    """Put the finished folder `tmp` at `folder` (a link there is replaced; an old folder is moved
    aside, put back if the move fails, and removed once the new one is in place)."""
    import shutil

    old = None
    if os.path.lexists(folder):
        if os.path.islink(folder) or not os.path.isdir(folder):
            os.unlink(folder)
        else:
            old = f"{folder}.old{os.getpid()}"
            os.replace(folder, old)
    try:
        os.replace(tmp, folder)
    except BaseException:
        if old:
            os.replace(old, folder)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------- write failures
_REASONS = {
    errno.ENOSPC: ("no space left on the device", "free some space or pass another {option}"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or pass another {option}"),
    errno.EROFS: ("the file system is read-only", "pass a writable {option}"),
    errno.EACCES: ("permission denied", "pass an {option} folder you can write to"),
    errno.EPERM: ("operation not permitted", "pass an {option} folder you can write to"),
    errno.EFBIG: ("file too large for the file system or the process limit (ulimit -f)",
                  "raise the limit or pass another {option}"),
    errno.EISDIR: ("a folder is in the way", "move it away or pass another {option}"),
    errno.ENOTDIR: ("a file is in the way where a folder is needed", "move it away or pass another {option}"),
    errno.EEXIST: ("a file is in the way where a folder is needed", "move it away or pass another {option}"),
    errno.ENAMETOOLONG: ("the path is too long", "pass a shorter {option}"),
    errno.EIO: ("input/output error from the device", "check the disk, then run the same command again"),
}
IO_ERRNOS = frozenset(_REASONS)
NOTHING_LEFT = "nothing is left half-written"


def write_error(err, path=None, what="", option="--out", note=NOTHING_LEFT):
    """The OutputError of an OSError raised while writing `path`: what failed, why, what to do.

    what: e.g. "lock file" or ""; option: the command-line option that names the output; note:
    what the failure left behind, in parentheses at the end."""
    path = path or err.filename or "?"
    reason, advice = _REASONS.get(err.errno, (err.strerror or str(err), "check the output folder"))
    what = f"{what} " if what else ""
    note = f" ({note})" if note else ""
    return OutputError(f"cannot write {what}{os.fspath(path)!r}: {reason}; {advice.format(option=option)}{note}")


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
def write_errors(*targets, option="--out", note=NOTHING_LEFT):
    """Turn OSErrors of writes to `targets` (files or folders, what is inside them, and the folders
    above them that get made) and RuntimeErrors caused by one (torch.save's) into one-line
    OutputErrors (see write_error). Errors about other files, or of other kinds, pass unchanged."""
    roots = [os.path.abspath(os.fspath(t)) for t in targets]
    try:
        yield
    except (OSError, RuntimeError) as exc:
        err = os_error_in(exc)
        if err is None or err.errno not in IO_ERRNOS:
            raise
        name = err.filename
        if name is not None and not any(_related(os.path.abspath(os.fspath(name)), root) for root in roots):
            raise
        raise write_error(err, name or roots[0], option=option, note=note) from None


def _related(path, root):
    """`path` is `root`, inside it, or one of the folders above it (made by os.makedirs)."""
    return path == root or path.startswith(root + os.sep) or root.startswith(path.rstrip(os.sep) + os.sep)
