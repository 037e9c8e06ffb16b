"""Logging of a training run: text log (console + training.log), scalars.csv, TensorBoard if present.

Only rank 0 writes; other ranks log warnings and errors to the console only.
"""
import csv
import logging
import os
import sys
import time

from tqdm import tqdm

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
        os.makedirs(output, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output, "training.log"))
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(fh)
    return log


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
        os.makedirs(output, exist_ok=True)
        path = os.path.join(output, "scalars.csv")
        new = not os.path.isfile(path) or os.path.getsize(path) == 0
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(self.FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.tb = SummaryWriter(log_dir=os.path.join(output, "tensorboard"))
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
