"""The email sink's kept SMTP sessions beside a session per message, in one run.

    .venv/bin/python bench/email_sessions.py [--messages 300] [--rounds 3] [--rtt 0.01]

An SMTP server (aiosmtpd) in its own process on 127.0.0.1 requires STARTTLS (a
certificate made for the run, trusted through SSL_CERT_FILE as a real server's
would be) and AUTH, as a merchant's provider does; each of its answers to EHLO,
MAIL, RCPT and DATA waits ``--rtt`` seconds, standing in for the network between
a worker and a provider (0 for none). The sink (``worker.sinks.email``) sends
``--messages`` reminders one after another, in turns: with its sessions kept
(``worker.sinks.smtp_sessions.SESSIONS``, as shipped) and with none kept (a
``Sessions`` that keeps nothing: connect, STARTTLS, AUTH for every message, as
before). Prints messages/s and this process's CPU per message for each, and the
ratio kept/fresh per round.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import ssl
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]


from worker.http import build_client  # noqa: E402
from worker.points import BALANCE_CHANGED, CustomerContact, PointsSnapshot, change_payload  # noqa: E402
from worker.sandbox.tls import self_signed  # noqa: E402
from worker.sinks import email as email_sink  # noqa: E402
from worker.sinks.base import OutboundDelivery, SinkContext, StoreInfo  # noqa: E402
from worker.sinks.smtp_sessions import SESSIONS, Sessions  # noqa: E402

PASSWORD = "bench-smtp-password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt", type=float, default=0.01, help="seconds each answer waits")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = self_signed(Path(folder), hours=2)
        os.environ["SSL_CERT_FILE"] = str(cert_file)
        port = _free_port()
        ready = multiprocessing.Event()
        server = multiprocessing.Process(
            target=_serve, args=(port, cert_file, key_file, options.rtt, ready), daemon=True
        )
        server.start()
        if not ready.wait(20):
            raise SystemExit("the SMTP server did not start")
        try:
            _run(port, options)
        finally:
            server.terminate()
            server.join(5)


def _run(port: int, options: argparse.Namespace) -> None:
    sink = email_sink.EmailSink(
        {"host": "127.0.0.1", "port": port, "security": "starttls", "user": "relay",
         "password": PASSWORD, "from_address": "points@rayhan.example", "timeout": 10},
        SinkContext(build_client(allow_private=True)),
    )  # fmt: skip
    fresh = Sessions(per_server=0)  # keeps nothing: every message opens its own session
    rtt = f"{options.rtt * 1000:.0f} ms"
    print(f"{options.messages} messages per side, STARTTLS + AUTH, {rtt} per answer")
    print(f"{'round':>5} {'side':>6} {'msgs/s':>8} {'CPU ms/msg':>11}")
    for number in range(1, options.rounds + 1):
        rates = {}
        for side, sessions in (("fresh", fresh), ("kept", SESSIONS)):
            email_sink.SESSIONS = sessions
            rate, cpu = _send(sink, options.messages)
            rates[side] = rate
            print(f"{number:>5} {side:>6} {rate:>8.1f} {cpu:>11.2f}")
        print(f"{number:>5} {'ratio':>6} {rates['kept'] / rates['fresh']:>8.2f}  kept/fresh")
        SESSIONS.close_all()


def _send(sink: email_sink.EmailSink, messages: int) -> tuple[float, float]:
    started, cpu = time.monotonic(), time.process_time()
    for _ in range(messages):
        sink.send(_delivery())
    took = time.monotonic() - started
    return messages / took, (time.process_time() - cpu) * 1000 / messages


def _delivery() -> OutboundDelivery:
    expiry = datetime(2026, 12, 20, 21, 0, tzinfo=UTC)
    before = PointsSnapshot(Decimal(2860), Decimal(720), next_expiry_at=expiry,
                            next_expiry_points=Decimal(900))  # fmt: skip
    after = PointsSnapshot(Decimal(3110), Decimal(720), next_expiry_at=expiry,
                           next_expiry_points=Decimal(900))  # fmt: skip
    payload = change_payload(platform="salla", store="salla:1234509876", customer_id="1257881496",
                             kinds=[BALANCE_CHANGED], before=before, after=after,
                             timezone="Asia/Riyadh")  # fmt: skip
    return OutboundDelivery(
        id="msg_2mJ0rQ7dNnXhH5l6", event_type=BALANCE_CHANGED, payload=payload,
        created_at=datetime.now(UTC), attempt=1,
        store=StoreInfo("salla:1234509876", "متجر الريحان", "Asia/Riyadh", "ar"),
        contact=CustomerContact(email="sara@example.com", name="Sara", locale="ar"),
        excluded=False,
    )  # fmt: skip


def _serve(port: int, cert_file: Path, key_file: Path, rtt: float, ready: Any) -> None:
    import logging

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # its own deprecated login_data

    class Slow:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:  # fmt: skip
            session.host_name = hostname
            await asyncio.sleep(rtt)
            return responses

        async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                              options: list[str]) -> str:  # fmt: skip
            await asyncio.sleep(rtt)
            envelope.mail_from = address
            return "250 OK"

        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                              options: list[str]) -> str:  # fmt: skip
            await asyncio.sleep(rtt)
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(rtt)
            return "250 2.0.0 Ok: queued"

    def accept(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
        return AuthResult(success=auth.password == PASSWORD.encode())

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    controller = Controller(
        Slow(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=accept, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
