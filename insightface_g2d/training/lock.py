"""One training run per output folder: an exclusive lock on the folder and on `<output>/.g2d-train.lock`.

The lock is an `fcntl.flock` on the output folder itself (and on the lock file inside it), which
the kernel drops when the holding process exits in any way (SIGKILL, OOM, a crash), so a lock left
by a killed run is never mistaken for a live one and taking it over needs no guessing from PIDs:
the next run simply gets the flock. Deleting the lock file while a run holds it changes nothing:
the folder stays locked. The file holds the holder's PID, host and start time, for the message a
second run prints, and is left in place when the run ends. On a file system that cannot lock a
folder (NFS), the lock on the file alone keeps runs apart.

Under torchrun only rank 0 takes the lock; the other ranks learn the outcome from it, so every
process refuses together.
"""
import errno
import json
import os
import socket
import time

from ..errors import OutputError
from ..fileio import open_file

LOCK_NAME = ".g2d-train.lock"


def _read_holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}


def _holder_text(holder):
    if not holder.get("pid"):
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"])) if holder.get("started") else "?"
    return f"g2d-train PID {holder['pid']} on host {holder.get('host', '?')} (since {since})"


class OutputLock:
    """Context manager: hold the lock of `folder` (OutputError when another live run holds it).

    `previous` is the holder recorded in the file when the lock was free (a run that ended or was
    killed) or None; `stale` is True when that run did not release it cleanly.
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.fd = self.folder_fd = None
        self.previous = None
        self.stale = False

    def acquire(self):
        from .output_errors import write_error

        try:
            try:
                self.folder_fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
            except OSError as err:
                raise write_error(err, self.folder, "output folder") from None
            self._lock(self.folder_fd, folder=True)
            try:
                fd = open_file(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise write_error(err, self.path, "lock file") from None
            self._lock(fd)
            self.fd = fd
            holder = _read_holder(fd)
            self.previous = holder or None
            self.stale = bool(holder.get("pid")) and not holder.get("released")
            me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            try:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, json.dumps(me).encode())
            except OSError as err:
                raise write_error(err, self.path, "lock file") from None
        except BaseException:
            self._close()
            raise
        return self

    def _lock(self, fd, folder=False):
        """flock `fd` (the folder's, or the lock file's, which is closed on failure); OutputError
        naming the holder when another process holds it."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            failure = err
        if not folder:
            os.close(fd)
        if failure.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputError(
                f"output folder {self.folder!r} is in use by {_holder_text(self._current_holder())}; wait for that "
                f"run to end or stop it, or pass another --output") from None
        if folder:  # a file system that cannot lock a folder (NFS): the lock file alone
            os.close(self.folder_fd)
            self.folder_fd = None
            return
        raise OutputError(f"cannot lock output folder {self.folder!r} ({failure.strerror}); pass another --output "
                          "(on a network file system, one without working locks cannot hold runs safely)") from None

    def _current_holder(self):
        """The holder recorded in the lock file ({} when it is missing or unreadable)."""
        try:
            fd = open_file(self.path, os.O_RDONLY)
        except OSError:
            return {}
        try:
            return _read_holder(fd)
        finally:
            os.close(fd)

    def _close(self):
        for name in ("fd", "folder_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)  # drops its flock
                setattr(self, name, None)

    def release(self):
        if self.fd is None:
            self._close()
            return
        try:
            holder = _read_holder(self.fd)
            holder["released"] = time.time()
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.write(self.fd, json.dumps(holder).encode())
        except OSError:
            pass  # the lock itself goes with the descriptors
        finally:
            self._close()

    def takeover_note(self):
        """A log line when this run took over the lock of a run that was killed, else None."""
        if not self.stale:
            return None
        return (f"took over the lock of {_holder_text(self.previous)}, which ended without releasing it "
                "(killed?); its checkpoints are resumed as usual")

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
