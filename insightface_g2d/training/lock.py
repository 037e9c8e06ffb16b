"""One training run per output folder: an exclusive lock on `<output>/.g2d-train.lock`.

The lock is an `fcntl.flock` on the file, which the kernel drops when the holding process exits
in any way (SIGKILL, OOM, a crash), so a lock left by a killed run is never mistaken for a live one
and taking it over needs no guessing from PIDs: the next run simply gets the flock. The file also
holds the holder's PID, host and start time, for the message a second run prints, and is left in
place when the run ends (deleting it would let a third run lock a fresh file while a second still
holds the old one).

Under torchrun only rank 0 takes the lock; the other ranks learn the outcome from it, so every
process refuses together.
"""
import errno
import json
import os
import socket
import time

from ..errors import OutputError

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
        self.fd = None
        self.previous = None
        self.stale = False

    def acquire(self):
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as err:
            from .output_errors import write_error

            raise write_error(err, self.path, "lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"output folder {self.folder!r} is in use by {_holder_text(holder)}; wait for that run to "
                    f"end or stop it, or pass another --output") from None
            raise OutputError(f"cannot lock output folder {self.folder!r} ({err.strerror}); pass another --output "
                              "(on a network file system, one without working locks cannot hold runs safely)") from None
        holder = _read_holder(fd)
        self.previous = holder or None
        self.stale = bool(holder.get("pid")) and not holder.get("released")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            holder = _read_holder(self.fd)
            holder["released"] = time.time()
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.write(self.fd, json.dumps(holder).encode())
        except OSError:
            pass  # the lock itself goes with the descriptor
        finally:
            os.close(self.fd)  # drops the flock
            self.fd = None

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
