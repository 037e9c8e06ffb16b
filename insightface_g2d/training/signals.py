"""Graceful stop: SIGINT/SIGTERM ask the loop to finish the current step, save and exit."""
import signal
import threading


class GracefulStop:
    """Context manager that turns SIGINT/SIGTERM into `requested = True`.

    A second SIGINT aborts at once (KeyboardInterrupt, nothing saved). SIGTERM never aborts: torchrun
    sends it to workers that may already have had the terminal's SIGINT.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_request=None):
        self.requested = False
        self.signum = None
        self.on_request = on_request
        self._old = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        first = not self.requested
        self.requested = True
        self.signum = signum
        if first and self.on_request is not None:
            self.on_request(signal.Signals(signum).name)

    def request(self):
        """Ask for a stop from code (as a signal would)."""
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        return False
