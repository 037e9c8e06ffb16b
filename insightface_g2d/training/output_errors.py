"""Write failures in a run's output folder (disk full, read-only, permissions, a name taken by the
wrong kind of file) as one-line OutputErrors that say what failed and what to do, instead of
tracebacks: fileio's write errors, with g2d-train's option and what a failure leaves behind."""
from .. import fileio

NOTE = "nothing written so far is damaged: checkpoints are replaced atomically"


def write_error(err, path=None, what=""):
    """OutputError for an OSError raised while writing `path` (`what`: e.g. "lock file", or "")."""
    return fileio.write_error(err, path, what, option="--output", note=NOTE)


def write_errors(output):
    """Turn OSErrors of writes inside `output` (and torch.save's RuntimeErrors caused by one) into
    OutputErrors. Errors about files elsewhere pass through unchanged."""
    return fileio.write_errors(output, option="--output", note=NOTE)

