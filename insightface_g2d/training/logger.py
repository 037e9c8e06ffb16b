"""Logging of a training run: text log (console + training.log), scalars.csv, TensorBoard if present.

Only rank 0 writes; other ranks log warnings and errors to the console only.
"""
import csv
import logging
import os
import sys
import time

from tqdm import tqdm

from ..fileio import open_file, open_folder

LOGGER_NAME = "insightface_g2d.training"


class _TqdmHandler(logging.StreamHandler):
    """Console handler that does not tear tqdm progress bars."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never crash training
            self.handleError(record)


def setup_logging(output, rank=0, console=True):
    """The training logger: INFO to console and <output>/training.log on rank 0, WARNING elsewhere."""
    log = logging.getLogger(LOGGER_NAME)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    if console:
        h = _TqdmHandler()
        h.setFormatter(fmt)
        log.addHandler(h)
    if rank == 0 and output:
        fh = _FileHandler(os.path.join(output, "training.log"))
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(fh)
    return log


def open_append(path, **open_kwargs):
    """`path` opened for appending text, never through a symbolic link (fileio.open_file: a link
    there is replaced by a new file); its folder is made when missing."""
    return os.fdopen(open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", **open_kwargs)


class _FileHandler(logging.StreamHandler):
    """logging.FileHandler's job (append every record to a file) on a file opened by open_append."""

    def __init__(self, path):
        super().__init__(open_append(path, encoding="utf-8"))

    def close(self):
        try:
            self.flush()
            self.stream.close()
        finally:
            super().close()


def get_logger():
    return logging.getLogger(LOGGER_NAME)


class ScalarWriter:
    """Append scalars to <output>/scalars.csv (time, stage, step, name, value) and TensorBoard."""

    FIELDS = ("time", "stage", "step", "name", "value")

    def __init__(self, output, enabled=True):
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self._file = open_append(os.path.join(output, "scalars.csv"), newline="")
        self._csv = csv.writer(self._file)
        if self._file.tell() == 0:  # a new (or empty) file
            self._csv.writerow(self.FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            log_dir = os.path.join(output, "tensorboard")
            os.close(open_folder(log_dir, within=output))  # a real folder, never through a link
            self.tb = SummaryWriter(log_dir=log_dir)
        except Exception:  # TensorBoard is optional
            self.tb = None

    def write(self, stage, step, values):
        if not self.enabled:
            return
        now = f"{time.time():.3f}"
        for name, value in values.items():
            self._csv.writerow((now, stage, step, name, f"{float(value):.6g}"))
            if self.tb is not None:
                self.tb.add_scalar(f"{stage}/{name}", float(value), step)
        self._file.flush()

    def close(self):
        if not self.enabled or self._file.closed:
            return
        self._file.close()
        if self.tb is not None:
            self.tb.close()


def format_eta(seconds):
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
