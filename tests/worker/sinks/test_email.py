"""The email sink against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from worker.errors import PermanentError, TransientError
from worker.http import build_client
from worker.points import (
    BALANCE_CHANGED,
    EXPIRY_CHANGED,
    CustomerContact,
    PointsSnapshot,
    change_payload,
)
from worker.sandbox.tls import self_signed
from worker.sinks.base import OutboundDelivery, SendResult, SinkContext, StoreInfo
from worker.sinks.email import EmailSink
from worker.sinks.skips import AmbiguousSend, SkippedDelivery
from worker.sinks.smtp_sessions import SESSIONS, KeptSession, Sessions

DELIVERY_ID = "msg_2mJ0rQ7dNnXhH5l6"
CUSTOMER = "sara@example.com"
EXPIRY = datetime(2026, 11, 26, 9, 20, tzinfo=UTC)


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepted."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: queued as 4BQ1"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(cast(bytes, e.content), policy=default) for e in self.envelopes]


class RefusingRecipients(Mailbox):
    """Answers RCPT TO with ``reply``, echoing the address as real servers do."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return f"{self.code} 5.1.1 <{address}>: mailbox unavailable"


class AnsweringData(Mailbox):
    """Takes the message, then answers the end of DATA with ``reply``."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return self.reply


class DroppingAfterData(Mailbox):
    """Takes the message, then hangs up before answering: did it arrive? It did."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        cast(asyncio.Transport, server.transport).abort()  # no reply can follow
        return "250 never heard"


class SlowAfterData(Mailbox):
    """Takes the message, then answers only after the client stopped waiting."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        await asyncio.sleep(1.5)
        return "250 too late"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


StartSmtp = Callable[..., int]


@pytest.fixture
def start_smtp() -> Iterator[StartSmtp]:
    """Run an aiosmtpd server on 127.0.0.1 for ``handler``; returns its port."""
    running: list[Controller] = []

    def start(handler: Mailbox, **options: Any) -> int:
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        running.append(controller)
        return int(controller.port)

    yield start
    SESSIONS.close_all()  # hang up first: a server stopped under an open session warns
    for controller in running:
        controller.stop()


def sink(port: int, **config: Any) -> EmailSink:
    values = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": "points@rayhan.example",
        "from_name": "متجر الريحان",
        "reply_to": "care@rayhan.example",
        "timeout": 5,
    }
    return EmailSink(values | config, SinkContext(build_client(allow_private=True)))


def delivery(
    *, email: str | None = CUSTOMER, locale: str | None = "ar", excluded: bool = False
) -> OutboundDelivery:
    before = PointsSnapshot(Decimal(2860), Decimal(720), next_expiry_at=EXPIRY,
                            next_expiry_points=Decimal(900))  # fmt: skip
    payload = change_payload(
        platform="salla", store="salla:1234509876", customer_id="1257881496",
        kinds=[BALANCE_CHANGED, EXPIRY_CHANGED], before=before,
        after=PointsSnapshot(Decimal(3110), Decimal(720), next_expiry_at=EXPIRY,
                             next_expiry_points=Decimal(900)),
        timezone="Asia/Riyadh",
    )  # fmt: skip
    return OutboundDelivery(
        id=DELIVERY_ID,
        event_type=BALANCE_CHANGED,
        payload=payload,
        created_at=datetime(2026, 11, 23, 9, 20, tzinfo=UTC),
        attempt=1,
        store=StoreInfo("salla:1234509876", "متجر الريحان", "Asia/Riyadh", "ar"),
        contact=CustomerContact(email=email, name="Sara", locale=locale),
        excluded=excluded,
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    newlines = str.maketrans({"\r": None})
    return str(text.get_content()).translate(newlines), str(html.get_content())


def test_it_emails_the_customer_one_message_with_both_parts(start_smtp: StartSmtp) -> None:
    mailbox = Mailbox()
    port = start_smtp(mailbox)

    result = sink(port).send(delivery())

    assert result == SendResult(250, "SMTP server accepted the message (250)")
    [envelope] = mailbox.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("points@rayhan.example", [CUSTOMER])
    [message] = mailbox.messages()
    assert message["From"] == "متجر الريحان <points@rayhan.example>"
    assert message["To"] == f"Sara <{CUSTOMER}>"
    assert message["Reply-To"] == "care@rayhan.example"
    assert message["Subject"] == "حصلت على 250 نقطة في متجر الريحان"
    assert message["Content-Language"] == "ar"
    assert message["Message-ID"] == f"<{DELIVERY_ID}@rayhan.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert text.startswith("مرحبًا Sara،") and "3,110 نقاط" in text
    assert '<html lang="ar" dir="rtl">' in html


def test_it_writes_arabic_indic_digits_when_the_store_wants_them(start_smtp: StartSmtp) -> None:
    mailbox = Mailbox()
    sink(start_smtp(mailbox), digits="arabic-indic").send(delivery())

    [message] = mailbox.messages()
    text, html = parts(message)
    assert message["Subject"] == "حصلت على ٢٥٠ نقطة في متجر الريحان"
    assert "٢٥٠" in text and "٢٥٠" in html and "٣٬١١٠" in html
    assert "250" not in text and 'dir="rtl"' in html


def test_it_writes_latin_digits_by_default(start_smtp: StartSmtp) -> None:
    mailbox = Mailbox()
    sink(start_smtp(mailbox)).send(delivery())

    text, html = parts(mailbox.messages()[0])
    assert "250" in text and "250" in html
    assert "٢٥٠" not in text + html


def test_it_writes_english_to_a_customer_who_reads_english(start_smtp: StartSmtp) -> None:
    mailbox = Mailbox()
    sink(start_smtp(mailbox), digits="arabic-indic").send(delivery(locale="en-GB"))

    [message] = mailbox.messages()
    text, html = parts(message)
    assert message["Content-Language"] == "en"
    assert message["Subject"] == "You earned 250 points at متجر الريحان"
    assert '<html lang="en" dir="ltr">' in html and "Hi <bdi>Sara</bdi>," in html
    assert "Your balance: 3,110 points" in text


def test_it_uses_the_sinks_language_when_the_customer_has_none(start_smtp: StartSmtp) -> None:
    mailbox = Mailbox()
    sink(start_smtp(mailbox), default_language="en").send(delivery(locale=None))
    assert mailbox.messages()[0]["Content-Language"] == "en"


def test_it_uses_a_merchant_override_template(start_smtp: StartSmtp, tmp_path: Path) -> None:
    (tmp_path / "points_earned.ar.txt").write_text(
        '{% extends "base.ar.txt" %}{% block subject %}هدية من {{ store_name }}{% endblock %}'
        "{% block content %}هديتك بانتظارك\n.سطر يبدأ بنقطة\n{% endblock %}"
    )
    mailbox = Mailbox()
    sink(start_smtp(mailbox), templates_dir=str(tmp_path)).send(delivery())

    [message] = mailbox.messages()
    text, html = parts(message)
    assert message["Subject"] == "هدية من متجر الريحان"
    assert "\nهديتك بانتظارك\n.سطر يبدأ بنقطة\n" in text  # a leading dot survives SMTP
    assert 'dir="rtl"' in html  # the HTML part was not overridden


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (delivery(excluded=True), "the customer is excluded from messages by the platform"),
        (delivery(email=None), "the customer has no email address"),
        (delivery(email="   "), "the customer has no email address"),
        (delivery(email="sara at example"), "the customer's email address is not usable"),
    ],
)
def test_it_skips_customers_it_must_not_or_cannot_email(
    start_smtp: StartSmtp, item: OutboundDelivery, reason: str
) -> None:
    mailbox = Mailbox()
    with pytest.raises(SkippedDelivery) as caught:
        sink(start_smtp(mailbox)).send(item)
    assert caught.value.reason == reason == str(caught.value)
    assert mailbox.envelopes == []


def test_it_skips_a_change_with_nothing_to_tell(start_smtp: StartSmtp) -> None:
    mailbox = Mailbox()
    pending_only = delivery()
    payload = pending_only.payload | {"balance_before": 3110, "kinds": [BALANCE_CHANGED]}
    item = OutboundDelivery(**(vars(pending_only) | {"payload": payload}))

    with pytest.raises(SkippedDelivery, match="nothing to tell the customer"):
        sink(start_smtp(mailbox)).send(item)
    assert mailbox.envelopes == []


def test_it_fails_permanently_when_the_mailbox_is_unavailable(start_smtp: StartSmtp) -> None:
    mailbox = RefusingRecipients(550)
    with pytest.raises(PermanentError) as caught:
        sink(start_smtp(mailbox)).send(delivery())

    assert not isinstance(caught.value, AmbiguousSend)
    assert "RCPT TO: SMTP server answered 550" in str(caught.value)
    assert CUSTOMER not in str(caught.value) and "sara" not in str(caught.value)
    assert caught.value.__cause__ is None and mailbox.envelopes == []


def test_it_retries_when_the_server_defers_the_recipient(start_smtp: StartSmtp) -> None:
    with pytest.raises(TransientError, match="RCPT TO: SMTP server answered 450"):
        sink(start_smtp(RefusingRecipients(450))).send(delivery())


def test_it_retries_when_the_server_is_down() -> None:
    with pytest.raises(TransientError, match="connect: could not talk to the SMTP server"):
        sink(free_port()).send(delivery())


@pytest.mark.parametrize(
    ("reply", "failure"),
    [("451 4.3.0 try again later", TransientError), ("554 5.7.1 spam", PermanentError)],
)
def test_it_trusts_a_definite_answer_after_the_data(
    start_smtp: StartSmtp, reply: str, failure: type[Exception]
) -> None:
    with pytest.raises(failure) as caught:
        sink(start_smtp(AnsweringData(reply))).send(delivery())
    assert not isinstance(caught.value, AmbiguousSend)
    assert f"end of DATA: SMTP server answered {reply[:3]}" in str(caught.value)


def test_it_counts_a_connection_dropped_after_the_data_as_sent(start_smtp: StartSmtp) -> None:
    mailbox = DroppingAfterData()
    with pytest.raises(AmbiguousSend) as caught:
        sink(start_smtp(mailbox)).send(delivery())

    assert isinstance(caught.value, PermanentError)  # never retried
    assert "after the message was sent" in str(caught.value)
    assert len(mailbox.envelopes) == 1


def test_it_counts_a_timeout_waiting_for_the_final_reply_as_sent(start_smtp: StartSmtp) -> None:
    mailbox = SlowAfterData()
    with pytest.raises(AmbiguousSend):
        sink(start_smtp(mailbox), timeout=0.5).send(delivery())
    assert len(mailbox.envelopes) == 1


def test_it_fails_permanently_when_the_credentials_are_refused(start_smtp: StartSmtp) -> None:
    def refuse(*_args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    mailbox = Mailbox()
    port = start_smtp(mailbox, authenticator=refuse, auth_require_tls=False)
    with pytest.raises(PermanentError, match="AUTH: the server refused the user name or password"):
        sink(port, user="relay", password="wrong").send(delivery())
    assert mailbox.envelopes == []


def test_it_logs_in_with_the_configured_credentials(start_smtp: StartSmtp) -> None:
    seen: list[tuple[str, bytes]] = []

    def accept(*args: Any) -> AuthResult:  # (server, session, envelope, mechanism, data)
        seen.append((args[3], args[4].password))
        return AuthResult(success=True)

    mailbox = Mailbox()
    port = start_smtp(mailbox, authenticator=accept, auth_require_tls=False)
    sink(port, user="relay", password="s3cret").send(delivery())
    assert seen and seen[0][1] == b"s3cret" and len(mailbox.envelopes) == 1


def test_it_fails_permanently_when_starttls_is_not_offered(start_smtp: StartSmtp) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        sink(start_smtp(Mailbox()), security="starttls").send(delivery())


def server_tls(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def trusted_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context whose certificate this process trusts (``SSL_CERT_FILE``), so the
    sink verifies it exactly as it verifies a real server's."""
    cert_file, key_file = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    return server_tls(cert_file, key_file)


def test_it_logs_in_after_starttls(start_smtp: StartSmtp, trusted_tls: ssl.SSLContext) -> None:
    def accept(*_args: Any) -> AuthResult:
        return AuthResult(success=True)

    mailbox = Mailbox()
    port = start_smtp(mailbox, tls_context=trusted_tls, require_starttls=True, authenticator=accept)
    sink(port, security="starttls", user="relay", password="s3cret").send(delivery())
    assert len(mailbox.envelopes) == 1


def test_it_speaks_implicit_tls(start_smtp: StartSmtp, trusted_tls: ssl.SSLContext) -> None:
    mailbox = Mailbox()
    sink(start_smtp(mailbox, ssl_context=trusted_tls), security="tls").send(delivery())
    assert len(mailbox.envelopes) == 1


def test_it_retries_when_the_certificate_cannot_be_verified(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    server = server_tls(*self_signed(tmp_path))  # nobody trusts it
    with pytest.raises(TransientError, match="STARTTLS: could not talk to the SMTP server"):
        sink(start_smtp(Mailbox(), tls_context=server), security="starttls").send(delivery())


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"host": None}, "host: Field may not be null."),
        ({"security": "ssl"}, "security: Must be one of"),
        ({"primary_color": "teal"}, "primary_color: must be a colour like #0f766e"),
        ({"digits": "persian"}, "digits: Must be one of"),
        ({"from_address": "nobody"}, "from_address: Not a valid email address."),
        ({"user": "relay"}, "password: give both or neither"),
        ({"user": "relay", "password": "x", "host": "smtp.example.com"}, "would send the password"),
        ({"templates_dir": "relative/dir"}, "templates_dir: must be an absolute path"),
        ({"from_name": "Rayhan\r\nBcc: all@example.com"}, "from_name: must be one line"),
        ({"smtp_host": "typo"}, "smtp_host: Unknown field."),
    ],
)
def test_it_rejects_a_bad_config_readably(config: dict[str, Any], problem: str) -> None:
    base = {"host": "127.0.0.1", "from_address": "points@rayhan.example", "security": "none"}
    with pytest.raises(ValueError) as caught:
        EmailSink.validate_config(base | config)
    assert problem in str(caught.value)


def test_it_fills_in_defaults_for_a_minimal_config() -> None:
    config = EmailSink.validate_config({"host": "smtp.example.com", "from_address": "a@b.example"})
    assert config["port"] == 587 and config["security"] == "starttls"
    assert (config["digits"], config["default_language"]) == ("latin", None)
    assert config["primary_color"].startswith("#") and config["timeout"] == 30.0


# Sessions kept between messages (worker.sinks.smtp_sessions) ------------------------


class CountingSessions(Mailbox):
    """Notes the client's end of each connection a message came over."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__()
        self.peers: list[Any] = []
        self.refuse = refuse

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse and self.refuse in address:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


def test_it_sends_a_servers_messages_over_one_session(start_smtp: StartSmtp) -> None:
    """An expiry reminders' burst: one connection (and STARTTLS and AUTH) for all."""
    mailbox = CountingSessions()
    email = sink(start_smtp(mailbox))

    for _ in range(3):
        email.send(delivery())

    assert len(mailbox.envelopes) == 3
    assert len(set(mailbox.peers)) == 1


def test_a_session_the_server_closed_while_idle_costs_no_message(start_smtp: StartSmtp) -> None:
    mailbox = CountingSessions()
    email = sink(start_smtp(mailbox, timeout=0.3))  # aiosmtpd hangs up on idle clients

    email.send(delivery())
    time.sleep(0.8)  # the server has closed the kept session meanwhile
    result = email.send(delivery())

    assert result.status_code == 250
    assert len(mailbox.envelopes) == 2  # each once
    assert len(set(mailbox.peers)) == 2


def test_a_session_is_not_kept_after_a_refused_recipient(start_smtp: StartSmtp) -> None:
    mailbox = CountingSessions(refuse="nobody")
    email = sink(start_smtp(mailbox))
    email.send(delivery())
    idle = SESSIONS.idle()

    with pytest.raises(PermanentError):
        email.send(delivery(email="nobody@example.com"))
    assert SESSIONS.idle() == idle - 1  # taken, failed mid-transaction, closed
    email.send(delivery())

    assert len(mailbox.envelopes) == 2 and len(set(mailbox.peers)) == 2


def test_a_session_is_not_kept_after_an_unknown_outcome(start_smtp: StartSmtp) -> None:
    idle = SESSIONS.idle()
    with pytest.raises(AmbiguousSend):
        sink(start_smtp(DroppingAfterData())).send(delivery())
    assert SESSIONS.idle() == idle


def test_sessions_end_after_their_message_limit_and_when_idle_too_long(
    start_smtp: StartSmtp,
) -> None:
    port = start_smtp(Mailbox())
    now = [0.0]
    sessions = Sessions(idle_seconds=30, max_messages=2, clock=lambda: now[0])
    opened = smtplib.SMTP("127.0.0.1", port, timeout=5)

    sessions.give_back("server", KeptSession(opened))
    kept = sessions.take("server")
    assert kept is not None and kept.smtp is opened and kept.reused
    sessions.give_back("server", kept)  # its second message: the limit
    assert sessions.take("server") is None and opened.sock is None  # closed

    young = smtplib.SMTP("127.0.0.1", port, timeout=5)
    sessions.give_back("server", KeptSession(young))
    now[0] += 31
    assert sessions.take("server") is None and young.sock is None
    assert sessions.idle() == 0
