"""Email to the customer over SMTP: a change becomes at most one message.

# Reference: RFC 5321 (SMTP: replies 2xx/3xx/4xx/5xx, the DATA exchange), RFC 3834
# (Auto-Submitted), RFC 3282 (Content-Language), RFC 5322 (Message-ID).

**At most once.** A person must never get the same message twice, so the one
moment that matters is when the message's data has been handed to the server:

- everything before it (connect, EHLO, STARTTLS, AUTH, MAIL FROM, RCPT TO and the
  server's answer to ``DATA`` itself) certainly sent nothing, so a failure there
  is retried (``TransientError`` for 4xx and connection trouble, ``PermanentError``
  for 5xx and refused credentials);
- once the data is sent, only the server's final reply proves the outcome. A
  2xx, 4xx or 5xx is definite; a dropped connection or a timeout is not, and the
  message may well be in the mailbox: ``AmbiguousSend`` (a ``PermanentError``),
  which the outbox records as delivered, never retried.

That is why this drives ``smtplib.SMTP`` step by step instead of
``send_message``, which reports every failure alike. The outbox records the
attempt (``attempts + 1``, status ``sending``) before calling us; a worker that
dies mid-send leaves the row in ``sending`` and this sink cannot know what
happened, so the outbox must not resend such a row for this kind. The
``Message-ID`` is the delivery id (``<msg_…@from-domain>``) so that a receiving
server or client can still drop a duplicate.

No address or name ever goes into an exception message or a log line: servers
echo the recipient in their replies, so replies are scrubbed before they are.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, TypeVar

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from worker.errors import PermanentError, RelayError, TransientError
from worker.logs import scrub
from worker.sinks.base import OutboundDelivery, SendResult, Sink, SinkContext
from worker.sinks.email_render import (
    DIGIT_STYLES,
    LANGUAGES,
    Brand,
    RenderedEmail,
    choose_message,
    customer_language,
    message_context,
    render,
)
from worker.sinks.skips import AmbiguousSend, SkippedDelivery
from worker.sinks.smtp_sessions import SESSIONS, KeptSession
from worker.sinks.smtp_sessions import close as _quit

__all__ = ["AmbiguousSend", "EmailConfigSchema", "EmailSink", "SkippedDelivery"]

T = TypeVar("T")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
COLOR = validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="must be a colour like #0f766e")
# Names go into headers (From) and the layout: one line of at most 120 characters.
ONE_LINE = validate.Regexp(
    r"^[^\x00-\x1f\x7f]{1,120}$", error="must be one line of 1-120 characters"
)


class EmailConfigSchema(Schema):
    """CLI input: strict, unknown keys are a typo to report, not to drop."""

    class Meta:
        unknown = RAISE

    host = fields.String(required=True, validate=validate.Length(min=1, max=253))
    port = fields.Integer(load_default=None, validate=validate.Range(min=1, max=65535))
    security = fields.String(load_default="starttls", validate=validate.OneOf(tuple(DEFAULT_PORTS)))
    user = fields.String(load_default=None, validate=validate.Length(min=1))
    password = fields.String(load_default=None, validate=validate.Length(min=1))
    from_address = fields.Email(required=True)
    from_name = fields.String(load_default=None, validate=ONE_LINE)
    reply_to = fields.Email(load_default=None)
    store_name = fields.String(load_default=None, validate=ONE_LINE)
    primary_color = fields.String(load_default="#0f766e", validate=COLOR)
    accent_color = fields.String(load_default="#d97706", validate=COLOR)
    digits = fields.String(load_default="latin", validate=validate.OneOf(DIGIT_STYLES))
    default_language = fields.String(load_default=None, validate=validate.OneOf(LANGUAGES))
    templates_dir = fields.String(load_default=None, validate=validate.Length(min=1))
    timeout = fields.Float(load_default=30.0, validate=validate.Range(min=0.1, max=300))

    @validates_schema
    def _check_login(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if bool(data.get("user")) != bool(data.get("password")):
            raise ValidationError("give both or neither", "password")
        if data.get("user") and data["security"] == "none" and not _is_loopback(data["host"]):
            raise ValidationError("would send the password in clear: use starttls or tls", "user")

    @validates_schema
    def _check_templates_dir(self, data: dict[str, Any], **_kwargs: Any) -> None:
        folder = data.get("templates_dir")
        if folder and not (Path(folder).is_absolute() and Path(folder).is_dir()):
            raise ValidationError("must be an absolute path to a directory", "templates_dir")

    @post_load
    def _normalise(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["port"] = data["port"] or DEFAULT_PORTS[data["security"]]
        data["primary_color"] = data["primary_color"].lower()
        data["accent_color"] = data["accent_color"].lower()
        return data


class EmailSink(Sink):
    kind = "email"

    at_most_once = True  # a person reads it: never twice

    def __init__(self, config: Mapping[str, Any], context: SinkContext) -> None:
        """``RELAY_TEMPLATES_DIR`` (the context's settings) overrides templates for every
        store, after the sink's own ``templates_dir`` and before the built-in templates."""
        super().__init__(config, context)
        settings = context.settings
        self.shared_templates_dir: Path | None = settings.templates_dir if settings else None

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = EmailConfigSchema().load(dict(config))
        except ValidationError as exc:
            raise ValueError(_readable(exc)) from None
        return loaded

    def send(self, delivery: OutboundDelivery) -> SendResult:
        recipient = _recipient(delivery)
        message = self.compose(delivery, recipient)
        code = _transfer(self.config, message, recipient.addr_spec)
        return SendResult(code, f"SMTP server accepted the message ({code})")

    def compose(self, delivery: OutboundDelivery, recipient: Address) -> EmailMessage:
        """The multipart/alternative message for this delivery, or ``SkippedDelivery``."""
        from_address = self.config["from_address"]
        display_name = self.config["from_name"] or self.brand(delivery).store_name
        return build_message(
            self.render(delivery),
            sender=Address(display_name=display_name, addr_spec=from_address),
            recipient=recipient,
            reply_to=self.config["reply_to"],
            message_id=message_id(delivery.id, from_address),
        )

    def render(self, delivery: OutboundDelivery) -> RenderedEmail:
        kind = choose_message(delivery)
        lang = customer_language(
            delivery.contact.locale, self.config["default_language"], delivery.store.locale
        )
        context = message_context(delivery, self.brand(delivery))
        return render(kind, lang, context, template_dirs=self.template_dirs())

    def brand(self, delivery: OutboundDelivery) -> Brand:
        name = self.config["store_name"] or delivery.store.name or self.config["from_name"]
        return Brand(
            store_name=name or self.config["from_address"].rpartition("@")[2],
            primary_color=self.config["primary_color"],
            accent_color=self.config["accent_color"],
            digits=self.config["digits"],
        )

    def template_dirs(self) -> list[Path]:
        folders = [self.config["templates_dir"], self.shared_templates_dir]
        return [Path(folder) for folder in folders if folder]


def _recipient(delivery: OutboundDelivery) -> Address:
    """Who gets it; customers who opted out or have no usable address get nothing."""
    if delivery.excluded:
        raise SkippedDelivery("the customer is excluded from messages by the platform")
    email = (delivery.contact.email or "").strip()
    if not email:
        raise SkippedDelivery("the customer has no email address")
    local, at, domain = email.rpartition("@")
    if not (local and at and domain) or any(c.isspace() for c in email):
        raise SkippedDelivery("the customer's email address is not usable")
    name = " ".join((delivery.contact.name or "").split())
    try:
        return Address(display_name=name, addr_spec=email)
    except (ValueError, IndexError):  # the header parser's ways of saying "not an address"
        raise SkippedDelivery("the customer's email address is not usable") from None


def message_id(delivery_id: str, from_address: str) -> str:
    """Stable across retries, so a receiving server or client can drop a duplicate."""
    return f"<{delivery_id}@{from_address.rpartition('@')[2]}>"


def build_message(
    rendered: RenderedEmail,
    *,
    sender: Address,
    recipient: Address,
    reply_to: str | None,
    message_id: str,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = recipient
    if reply_to:
        message["Reply-To"] = reply_to
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    # Quoted-printable keeps the body 7-bit, so no server needs 8BITMIME.
    message.set_content(rendered.text, subtype="plain", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    # After the parts: making the message multipart moves every Content-* header into them.
    message["Content-Language"] = rendered.lang
    return message


# SMTP, step by step --------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    sender: str
    recipient: str
    data: bytes
    options: tuple[str, ...]


def _transfer(config: Mapping[str, Any], message: EmailMessage, recipient: str) -> int:
    """Send ``message``; return the final reply's code or raise what the outcome means.

    Over a session kept from the last message to this server when there is one
    (``worker.sinks.smtp_sessions``); it goes back only after a 2xx."""
    envelope = _envelope(config["from_address"], recipient, message)
    server = _server(config)
    session = _ready(config, server, envelope)
    try:
        code, reply = _hand_over(session.smtp, envelope.data)
    except BaseException:
        _quit(session.smtp)
        raise
    if 200 <= code <= 299:
        SESSIONS.give_back(server, session)
        return code
    _quit(session.smtp)
    if 400 <= code <= 599:  # a definite "not taken": nothing reached the mailbox
        raise _by_code("end of DATA", code, reply, recipient)
    raise AmbiguousSend(f"no usable answer after the message was sent ({code})")


def _server(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """Which kept sessions may carry a message: same server, same security, same login."""
    return (config["host"], config["port"], config["security"], config["user"], config["password"])


def _ready(config: Mapping[str, Any], server: tuple[Any, ...], envelope: _Envelope) -> KeptSession:
    """A session past MAIL FROM, RCPT TO and DATA's 354: the message's data is next.

    A kept session that fails with a transient error (the server closed it while it
    was idle, or answered 421) has sent nothing: the message goes over a new one."""
    kept = SESSIONS.take(server)
    if kept is not None:
        try:
            _before_data(kept.smtp, envelope)
            return kept
        except TransientError:
            kept.smtp.close()
        except BaseException:
            _quit(kept.smtp)
            raise
    smtp = _open(config)
    try:
        _before_data(smtp, envelope)
    except BaseException:
        _quit(smtp)
        raise
    return KeptSession(smtp)


def _envelope(sender: str, recipient: str, message: EmailMessage) -> _Envelope:
    international = not (sender + recipient).isascii()
    data = message.as_bytes(policy=SMTPUTF8 if international else SMTP)
    options = ("SMTPUTF8", "BODY=8BITMIME") if international else ()
    return _Envelope(sender, recipient, data, options)


def _open(config: Mapping[str, Any]) -> smtplib.SMTP:
    """Connect, greet, secure and log in: a failure here sent nothing."""
    smtp = _step("connect", lambda: _connect(config))
    try:
        _step("EHLO", smtp.ehlo_or_helo_if_needed)
        if config["security"] == "starttls":
            _step("STARTTLS", lambda: smtp.starttls(context=ssl.create_default_context()))
            _step("EHLO", smtp.ehlo_or_helo_if_needed)  # STARTTLS forgets the first greeting
        if config["user"]:
            _step("AUTH", lambda: smtp.login(config["user"], config["password"]))
    except RelayError:
        _quit(smtp)
        raise
    return smtp


def _connect(config: Mapping[str, Any]) -> smtplib.SMTP:
    host, port, timeout = config["host"], config["port"], config["timeout"]
    if config["security"] == "tls":
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    return smtplib.SMTP(host, port, timeout=timeout)


def _before_data(smtp: smtplib.SMTP, envelope: _Envelope) -> None:
    """MAIL FROM, RCPT TO and DATA's own answer: the message has not left yet."""
    recipient = envelope.recipient
    reply = _step("MAIL FROM", lambda: smtp.mail(envelope.sender, list(envelope.options)))
    _expect("MAIL FROM", reply, recipient, range(200, 300))
    _expect("RCPT TO", _step("RCPT TO", lambda: smtp.rcpt(recipient)), recipient, range(200, 300))
    _expect("DATA", _step("DATA", lambda: smtp.docmd("DATA")), recipient, range(354, 355))


def _hand_over(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """Send the message and read the final reply; without one, the outcome is unknown."""
    try:
        smtp.send(_dot_stuffed(data))
        return smtp.getreply()
    except (OSError, smtplib.SMTPException) as exc:
        raise AmbiguousSend(
            f"the connection failed after the message was sent ({type(exc).__name__}); "
            "counted as sent so that the customer never gets it twice"
        ) from None


def _dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line starting with "." gets another; the message ends with CRLF.CRLF."""
    lines = data.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def _step(name: str, action: Callable[[], T]) -> T:
    """Run one step before the data is sent; every failure here is certain not to have sent."""
    try:
        return action()
    except smtplib.SMTPAuthenticationError as exc:
        if 400 <= exc.smtp_code <= 499:
            raise TransientError(f"AUTH: server answered {exc.smtp_code}, try later") from None
        raise PermanentError(
            f"AUTH: the server refused the user name or password ({exc.smtp_code})"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(name, exc.smtp_code, exc.smtp_error, None) from None
    except smtplib.SMTPNotSupportedError as exc:  # "STARTTLS extension not supported by server."
        raise PermanentError(f"{name}: {exc}") from None
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        raise TransientError(f"{name}: could not talk to the SMTP server ({_name(exc)})") from None
    except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism in common
        raise PermanentError(f"{name}: {_name(exc)}: {scrub(str(exc))[:200]}") from None


def _expect(name: str, reply: tuple[int, bytes], recipient: str, wanted: range) -> None:
    code, text = reply
    if code not in wanted:
        raise _by_code(name, code, text, recipient)


def _by_code(name: str, code: int, reply: bytes | str, recipient: str | None) -> RelayError:
    """RFC 5321 4.2.1: 4xx may succeed later, 5xx will not (550 mailbox unavailable…)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    if recipient:
        text = text.replace(recipient, "[recipient]")
    message = f"{name}: SMTP server answered {code} {' '.join(scrub(text).split())[:200]}"
    error = PermanentError(message) if 500 <= code <= 599 else TransientError(message)
    error.status_code = code  # the attempt row keeps the SMTP reply code
    return error


def _name(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__


def _is_loopback(host: str) -> bool:
    """A relay on this machine (a local Postfix) may take a password without TLS."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _readable(error: ValidationError) -> str:
    """``host: Missing data for required field.; …``: field names with value-free messages."""
    if not isinstance(error.messages, dict):
        return " ".join(map(str, error.messages))
    problems = error.messages.items()
    return "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in problems)
