"""Shared settings for the fuzz tests (tests/test_fuzz_*.py); holds no tests itself.

Every fuzz target runs `fuzz_examples(default)` hypothesis examples, derandomized so CI is
reproducible. Set G2D_FUZZ_EXAMPLES=N to run N examples per target instead (a local campaign),
G2D_FUZZ_SEED=S to draw other examples than CI's (random instead of derandomized when S is
"random"), and G2D_FUZZ_LOG=path.jsonl to append one line per target with the count of
examples that ran. With `pytest -s` the counts are also printed.

Hang guard: each example runs under `time_limit` (SIGALRM), so an endless loop fails the test
instead of stalling CI; hypothesis's own deadline is off (timings on a shared CPU are noisy).
"""
import contextlib
import json
import os
import signal
import time

import hypothesis
from hypothesis import HealthCheck, settings

EXAMPLE_TIMEOUT_S = float(os.environ.get("G2D_FUZZ_TIMEOUT", "20"))


def fuzz_examples(default):
    """Examples per target: G2D_FUZZ_EXAMPLES when set, else `default` (CI)."""
    return int(os.environ.get("G2D_FUZZ_EXAMPLES", default))


def fuzz_settings(default):
    seed = os.environ.get("G2D_FUZZ_SEED")
    return settings(
        max_examples=fuzz_examples(default),
        derandomize=seed is None,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


def fuzz(default):
    """Decorator for a @given test: fuzz_settings(default), plus @seed(G2D_FUZZ_SEED) when numeric."""
    def deco(fn):
        fn = fuzz_settings(default)(fn)
        seed_value = os.environ.get("G2D_FUZZ_SEED")
        if seed_value not in (None, "random"):
            fn = hypothesis.seed(int(seed_value))(fn)
        return fn
    return deco


class HangError(AssertionError):
    """An example ran past EXAMPLE_TIMEOUT_S: a parser looped or stalled."""


@contextlib.contextmanager
def time_limit(seconds=EXAMPLE_TIMEOUT_S):
    def on_alarm(signum, frame):
        raise HangError(f"example ran longer than {seconds} s (hang?)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Counter:
    """Counts example bodies run and outcomes; `report()` prints and logs them."""

    def __init__(self, target):
        self.target = target
        self.n = 0
        self.outcomes = {}
        self.t0 = time.perf_counter()
        self.baseline = None  # the process's peak resident memory when the campaign began (start())

    def start(self):
        """Called at the top of each example: the first call marks the campaign's start (time and the
        peak memory so far), so tests run before it in the same process count in neither."""
        if self.baseline is None:
            import resource

            self.t0 = time.perf_counter()
            self.baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def add(self, outcome):
        self.n += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def report(self):
        seconds = time.perf_counter() - self.t0
        line = {"target": self.target, "examples": self.n, "outcomes": self.outcomes,
                "seconds": round(seconds, 2)}
        print(f"\nFUZZ {self.target}: {self.n} examples in {seconds:.1f} s; outcomes {self.outcomes}")
        log = os.environ.get("G2D_FUZZ_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps(line) + "\n")
        return line
