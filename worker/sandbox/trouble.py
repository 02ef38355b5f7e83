"""What every platform sandbox's state shares: trouble to inject (failures, a
delay, a fixed-window request budget per key) and the log of requests it saw.

A platform's state class (``SallaSandboxState``, ``ZidSandboxState``,
``AppstleSandboxState``) inherits ``SandboxTrouble[<its request record>]`` and
adds its own stores, tokens and customers under the same lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import Flask, Response, request

Seen = TypeVar("Seen")


@dataclass(frozen=True)
class InjectedFailure:
    status: int
    retry_after: int | None = None
    path: str | None = None  # only requests whose path ends with this; None: any

    def applies_to(self, path: str) -> bool:
        return self.path is None or path.endswith(self.path)


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset: int  # epoch seconds
    retry_after: int | None = None  # set when the request was refused


@dataclass
class _Window:
    started: float
    used: int = 0


class FailureQueue:
    """The one failure-injection kit of every sandbox (platform APIs, CRMs): failures
    to answer, in order, each for any request or those whose path ends with ``path``."""

    def __init__(self) -> None:
        self._failure_lock = threading.Lock()
        self._failures: deque[InjectedFailure] = deque()

    def fail_next(
        self,
        count: int,
        *,
        status: int = 500,
        retry_after: int | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``, or any) with ``status``;
        ``retry_after`` is sent as Retry-After when given."""
        with self._failure_lock:
            self._failures.extend([InjectedFailure(status, retry_after, path)] * count)

    def take_failure(self, path: str = "") -> InjectedFailure | None:
        with self._failure_lock:
            failure = next((f for f in self._failures if f.applies_to(path)), None)
            if failure is not None:
                self._failures.remove(failure)
            return failure


class SandboxTrouble(FailureQueue, Generic[Seen]):
    """Injected failures, delay and budget, and the request log; every method is thread-safe."""

    def __init__(
        self, *, rate_limit: int, rate_window: float, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._requests: list[Seen] = []
        self._delay = 0.0

    # --- driving it ---

    def set_delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def set_rate_limit(self, limit: int, window: float) -> None:
        with self._lock:
            self.rate_limit, self.rate_window = limit, window
            self._windows.clear()

    # --- reading it ---

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    @property
    def delay(self) -> float:
        with self._lock:
            return self._delay

    # --- used by the app ---

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._requests.append(seen)

    def take_budget(self, key: str) -> RateState:
        """Count one request against ``key``'s window, or refuse it (``retry_after`` set)."""
        with self._lock:
            now = self._clock()
            window = self._window(key, now)
            if window.used >= self.rate_limit:
                retry_after = max(1, math.ceil(window.started + self.rate_window - now))
                state = self._rate_state(window)
                return RateState(state.limit, state.remaining, state.reset, retry_after)
            window.used += 1
            return self._rate_state(window)

    def peek_budget(self, key: str) -> RateState:
        with self._lock:
            return self._rate_state(self._window(key, self._clock()))

    def _window(self, key: str, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None or now >= window.started + self.rate_window:
            window = self._windows[key] = _Window(started=now)
        return window

    def _rate_state(self, window: _Window) -> RateState:
        reset = math.ceil(window.started + self.rate_window)
        return RateState(self.rate_limit, max(0, self.rate_limit - window.used), reset)


def serve_trouble(
    app: Flask,
    sandbox: SandboxTrouble[Seen],
    answer: Callable[[InjectedFailure], Response],
    seen: Callable[[int], Seen],
) -> None:
    """Every request waits the injected delay and may get an injected failure
    (``answer`` gives the platform's shape of it); every answer is logged as ``seen``."""

    @app.before_request
    def gate() -> Response | None:
        time.sleep(sandbox.delay)
        failure = sandbox.take_failure(request.path)
        return answer(failure) if failure else None

    @app.after_request
    def finish(response: Response) -> Response:
        sandbox.record(seen(response.status_code))
        return response
