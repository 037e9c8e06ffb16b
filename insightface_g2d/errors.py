"""Exceptions raised for bad input (each message says what was wrong and what to do), and the one a
SIGTERM raises."""
import difflib


def suggest(word, candidates):
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


class G2DError(Exception):
    """Base class of every error this project raises on purpose."""


class DataError(G2DError):
    """A dataset, record, image, pairs file or .bin file is missing or malformed."""


class CheckpointError(G2DError):
    """A checkpoint is missing, unreadable, or does not match the network."""


class ConfigError(G2DError):
    """A config file or key is wrong."""


class TrainingError(G2DError):
    """Training cannot go on (for example a NaN loss)."""


class OutputError(G2DError):
    """The output folder cannot be used: in use by another run, not writable, full, or a name in it
    is taken by a file of the wrong kind."""


class Terminated(KeyboardInterrupt):
    """SIGTERM asked the process to stop. Raised by `raise_terminated` (the SIGTERM handler the
    command-line tools install) so that cleanup runs as after Ctrl-C: temporary files are removed,
    locks released. A KeyboardInterrupt, so whatever handles Ctrl-C handles it too."""


def raise_terminated(signum=None, frame=None):
    """A signal handler: raise Terminated."""
    raise Terminated()
