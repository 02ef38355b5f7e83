"""The receiver's store lookup under a spike: one load per store at a time.

Real threads (the receiver's gthread workers; gevent's are patched threads) call
the cache while its loader is held, so every caller misses at once, as a store's
webhooks do when they arrive together.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from web.receiver import StoreLookupCache
from worker.platforms.base import StoreSecrets

SECRETS = StoreSecrets(store_id=7, status="active", webhook_secrets=("s3cret",))
CALLERS = 8


class HeldLoader:
    """Counts its loads; each waits until the test lets it go."""

    def __init__(self, answers: list[StoreSecrets | None | Exception]) -> None:
        self.answers = answers
        self.calls = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, external_id: str) -> StoreSecrets | None:
        with self._lock:
            answer = self.answers[min(self.calls, len(self.answers) - 1)]
            self.calls += 1
        assert self.release.wait(10)
        if isinstance(answer, Exception):
            raise answer
        return answer


def spike(cache: StoreLookupCache, loader: HeldLoader) -> list[StoreSecrets | None | str]:
    """``CALLERS`` lookups of one store at once; each one's answer, or its error."""

    def one() -> StoreSecrets | None | str:
        try:
            return cache("store-1")
        except RuntimeError as exc:
            return str(exc)

    with ThreadPoolExecutor(CALLERS) as pool:
        futures = [pool.submit(one) for _ in range(CALLERS)]
        while loader.calls == 0:
            threading.Event().wait(0.01)
        threading.Event().wait(0.2)  # the others are waiting by now
        loader.release.set()
        return [future.result(timeout=10) for future in futures]


def test_a_spike_of_one_store_costs_one_load() -> None:
    loader = HeldLoader([SECRETS])
    cache = StoreLookupCache(loader)
    assert spike(cache, loader) == [SECRETS] * CALLERS
    assert loader.calls == 1
    assert cache("store-1") == SECRETS and loader.calls == 1  # and it is cached


def test_a_failed_load_leaves_each_waiting_request_to_load_for_itself() -> None:
    loader = HeldLoader([RuntimeError("database unavailable"), SECRETS])
    answers = spike(StoreLookupCache(loader), loader)
    assert answers.count("database unavailable") == 1  # only the request whose load failed
    assert answers.count(SECRETS) == CALLERS - 1
    assert loader.calls == CALLERS


def test_an_unknown_store_is_shared_by_one_spike_and_not_cached() -> None:
    loader = HeldLoader([None, SECRETS])
    cache = StoreLookupCache(loader)
    assert spike(cache, loader) == [None] * CALLERS
    assert loader.calls == 1
    assert cache("store-1") == SECRETS  # registered since: found at once
    assert loader.calls == 2


def test_a_lapsed_entry_is_loaded_again() -> None:
    loader = HeldLoader([SECRETS])
    loader.release.set()
    cache = StoreLookupCache(loader, ttl=0.0)
    assert cache("store-1") == SECRETS and cache("store-1") == SECRETS
    assert loader.calls == 2
