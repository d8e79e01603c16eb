"""The harness's bound on requests in flight: a semaphore that adapts to HTTP 429s (AIMD).

The bound starts at ``params.parallelism``; repeated 429s halve it (at most once per "epoch":
answers to requests sent before the last decrease do not count again), and every ``limit``
successes add one back, like TCP congestion control, so a rate-limited endpoint is not
hammered and full speed comes back once it stops refusing.
"""

from __future__ import annotations

import asyncio
import collections


class AdaptiveLimiter:
    """A semaphore whose size adapts to HTTP 429s (AIMD). Use from one event loop only.

    ``acquire()`` returns the current epoch; pass it to ``rate_limited(epoch)`` when that
    request got a 429. ``trigger`` 429s within one epoch multiply the limit by ``factor`` (down
    to ``minimum``) and start a new epoch; ``limit`` successes in a row add one (up to
    ``maximum``).
    """

    def __init__(
        self, maximum: int, *, minimum: int = 1, factor: float = 0.5, trigger: int = 2
    ) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.factor = factor
        self.trigger = max(1, trigger)
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.epoch = 0
        self.decreases = 0
        self.lowest = self.maximum
        self._hits = 0
        self._successes = 0
        self._waiters: collections.deque[asyncio.Future[int]] = collections.deque()

    @property
    def current(self) -> int:
        return int(self.limit)

    async def acquire(self) -> int:
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return self.epoch
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(self.epoch)

    def succeeded(self) -> None:
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= int(self.limit):
            self._successes = 0
            self.limit = min(float(self.maximum), self.limit + 1)
            self._wake()

    def rate_limited(self, epoch: int) -> None:
        if epoch != self.epoch:
            return  # sent before the last decrease: already accounted for
        self._hits += 1
        if self._hits < self.trigger:
            return
        self._hits = 0
        self._successes = 0
        self.epoch += 1
        new = max(float(self.minimum), self.limit * self.factor)
        if int(new) < int(self.limit):
            self.decreases += 1
        self.limit = new
        self.lowest = min(self.lowest, int(new))
