"""CPU cost of encrypting an inbox body in the receiver, per webhook, in isolation.

    .venv/bin/python bench/inbox_seal.py [--rounds 20000]

Times ``worker.pipeline.inbox.sealed`` (what ``web.ingest.InboxWriter.record`` calls for
every webhook) on bodies of typical sizes, beside the HMAC-SHA256 verification
every webhook already costs, in one process and one run. Prints microseconds of
CPU per webhook (``time.process_time``), so other load on the machine does not
count.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import project  # noqa: F401  (before anything imports worker)

from worker.crypto import Cipher
from worker.pipeline import inbox

SIZES = (600, 2_000, 8_000)  # a customer event, an order, a large order (bytes)


def body_of_size(size: int) -> bytes:
    filler = "x" * size
    return json.dumps({"event": "order.created", "data": {"note": filler}}).encode()[:size]


def cpu_microseconds(step: Callable[[], object], rounds: int) -> float:
    started = time.process_time()
    for _ in range(rounds):
        step()
    return (time.process_time() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20_000)
    rounds = parser.parse_args().rounds
    one_key, rotating = Cipher("bench-key"), Cipher("new-key,old-key")
    print(f"{'body':>8} {'seal µs':>9} {'seal (2 keys)':>14} {'HMAC verify µs':>15} {'open µs':>8}")
    for size in SIZES:
        row = {"status": inbox.PENDING, "body": body_of_size(size)}
        token = one_key.seal_bytes(row["body"])
        seal = cpu_microseconds(lambda row=row: inbox.sealed(row, one_key), rounds)
        seal2 = cpu_microseconds(lambda row=row: inbox.sealed(row, rotating), rounds)
        verify = cpu_microseconds(
            lambda row=row: hmac.new(b"secret", row["body"], hashlib.sha256).hexdigest(), rounds
        )
        open_ = cpu_microseconds(lambda token=token: one_key.open_bytes(token), rounds)
        print(f"{size:>7}B {seal:>9.1f} {seal2:>14.1f} {verify:>15.1f} {open_:>8.1f}")


if __name__ == "__main__":
    main()
