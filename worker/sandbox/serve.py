"""``loyalty-relay sandbox``: the Salla sandbox in the foreground, with a demo merchant."""

from __future__ import annotations

import threading
from collections.abc import Callable

from worker.sandbox.salla import (
    DEMO_ACCESS_TOKEN,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOMER,
    DEMO_MERCHANT,
    DEMO_REFRESH_TOKEN,
    SallaSandboxState,
    create_salla_sandbox,
)
from worker.sandbox.server import serve_in_thread


def serve_sandbox(host: str, port: int, *, echo: Callable[[str], None]) -> None:
    state = SallaSandboxState.with_demo_store()
    server = serve_in_thread(create_salla_sandbox(state), host, port, quiet=False)
    echo(f"Salla sandbox on {server.url}  (Ctrl-C to stop)")
    echo(f"  merchant {DEMO_MERCHANT}, customer {DEMO_CUSTOMER} with a 70-entry history")
    echo(f"  access token {DEMO_ACCESS_TOKEN}, refresh token {DEMO_REFRESH_TOKEN}")
    echo(f"  OAuth: SALLA_OAUTH_TOKEN_URL={server.url}/oauth2/token")
    echo(f"         SALLA_CLIENT_ID={DEMO_CLIENT_ID} SALLA_CLIENT_SECRET={DEMO_CLIENT_SECRET}")
    echo(
        f"  register it: loyalty-relay stores add salla --merchant-id {DEMO_MERCHANT} "
        f"--access-token {DEMO_ACCESS_TOKEN} --refresh-token {DEMO_REFRESH_TOKEN} "
        f"--api-base {server.url}"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        echo("stopping")
    finally:
        server.stop()
