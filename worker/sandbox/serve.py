"""``loyalty-relay sandbox``: every platform's sandbox in the foreground, each with
its demo store, on consecutive ports."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack

from worker.sandbox.demo_platforms import DEMO_PLATFORMS, DemoPlatform


def serve_sandbox(host: str, port: int, *, echo: Callable[[str], None]) -> None:
    with ExitStack() as stack:
        for offset, make in enumerate(DEMO_PLATFORMS):
            platform = make()
            server = stack.enter_context(platform.server(host, port + offset if port else 0))
            _describe(platform, server.url, echo)
        # The URL policy refuses loopback addresses unless told otherwise.
        echo("\nrun the service with RELAY_ALLOW_PRIVATE_URLS=1 and the variables above")
        echo("(Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            echo("stopping")


def _describe(platform: DemoPlatform, url: str, echo: Callable[[str], None]) -> None:
    echo(f"{platform.name} sandbox on {url}")
    echo(f"  store {platform.store_id}, customer {platform.customer}")
    for name, value in platform.env(url).items():
        echo(f"  {name}={value}")
    for name, value in sorted(platform.credentials.items()):  # sandbox-only values
        shown = ", ".join(value) if isinstance(value, list) else value
        echo(f"  {name}: {shown}")
