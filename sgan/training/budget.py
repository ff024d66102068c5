"""A training time budget: machines of one kind differ up to 4x in speed, so a fixed iteration count cannot keep a
wall-time promise. With a budget, the run times a few iterations after warm-up and sets its length (and so the
learning rate's decay) to the count that fits, once; the count goes into the checkpoint, so a resumed run keeps it.
"""

import math
import time

SKIP = 50  # iterations left out of the timing: the first ones trace the step and run slower
WINDOW = 150  # iterations timed (over 40, one run read 3.9 iterations/s on 2 workers that then ran 4.5)
MARGIN = 0.97  # of the measured rate: the evaluations and checkpoints still to come
ROUND = 50  # counts are multiples of this, so that reruns on one machine usually choose the same one


class Budget:
    """Watches the first iterations of a run (from `start`, after `seconds_before` of earlier attempts) and says,
    once, how many iterations in all fit in `seconds`: at most `upper`, and at least enough that the decay, which
    starts at `decay_from` of the count, starts after the timed iterations (so the run is the run that
    `--iterations COUNT` would make)."""

    def __init__(self, seconds: float, upper: int, decay_from: float, start: int, seconds_before: float):
        self.seconds, self.upper, self.decay_from = seconds, upper, decay_from
        self.timed_from, self.timed_to = start + SKIP, start + SKIP + WINDOW
        self.seconds_before = seconds_before
        self.started = self.window_started = time.perf_counter()
        self.rate = self.fits = None

    def observe(self, done: int) -> int | None:
        """Called after each iteration with the count done; returns the planned count when the window ends."""
        if done == self.timed_from:
            self.window_started = time.perf_counter()
        if done != self.timed_to:
            return None
        now = time.perf_counter()
        self.rate = WINDOW / (now - self.window_started)
        left = self.seconds - self.seconds_before - (now - self.started)
        self.fits = int(done + max(0.0, left) * self.rate * MARGIN) // ROUND * ROUND
        least = math.ceil(done / self.decay_from) if self.decay_from else done
        return min(self.upper, max(least, self.fits))

    def describe(self, count: int) -> str:
        decay = f", the decay from {int(self.decay_from * count):,}" if self.decay_from < 1 else ""
        over = (f" (the budget fits {self.fits:,}: too few for the decay to start after the timing)"
                if count > self.fits else f" (the upper bound, --iterations; the budget fits {self.fits:,})"
                if count < self.fits else "")
        return (f"time budget {self.seconds:.0f} s at {self.rate:.2f} iterations/s (timed over iterations "
                f"{self.timed_from}-{self.timed_to}): {count:,} iterations{decay}{over}; `--iterations {count}` "
                "without a budget makes the same run")
