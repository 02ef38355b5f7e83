"""SMTP sessions kept open between messages to the same server, per process.

# Reference: RFC 5321 3.3 (a session may carry several mail transactions, each
# begun by MAIL FROM once the last one's final reply has come) and 4.5.3.2.7 (a
# server should wait at least 5 minutes for the client's next command).

An expiry reminders' burst sends hundreds of messages to one merchant's server. A
session per message pays the connection, STARTTLS (a TLS handshake) and AUTH each
time; a kept session pays them once. A session is kept only after a transaction
that ended in a 2xx (the server's state is then known: ready for MAIL FROM), and
never after a failure of any kind; it is dropped after ``MAX_MESSAGES`` messages
or ``IDLE_SECONDS`` unused. A kept session the server has meanwhile closed fails
before the message's data is sent, where a failure is certain to have sent
nothing (``worker.sinks.email``), so the message goes over a new session at once.

Sessions belong to the process that opened them: a forked child starts with none.
Each is used by one thread at a time (taken out while in use).
"""

from __future__ import annotations

import atexit
import os
import smtplib
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

IDLE_SECONDS = 30.0  # well inside the 5 minutes servers should wait, and the shorter ones some use
MAX_MESSAGES = 100  # some providers limit the messages of one session
PER_SERVER = 4  # idle sessions kept per server (a worker process's concurrent sends)


@dataclass
class KeptSession:
    smtp: smtplib.SMTP
    sent: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    reused: bool = False


class Sessions:
    """Idle sessions by server (host, port, security, user, password)."""

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        max_messages: int = MAX_MESSAGES,
        per_server: int = PER_SERVER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds, self.max_messages = idle_seconds, max_messages
        self.per_server = per_server
        self.clock = clock
        self._lock = threading.Lock()
        self._idle: dict[Hashable, list[KeptSession]] = {}
        self._pid = os.getpid()

    def take(self, server: Hashable) -> KeptSession | None:
        """An idle session to ``server`` that is young enough, or None."""
        with self._lock:
            stale = self._stale()
            kept = self._idle.get(server)
            session = kept.pop() if kept else None
        for old in stale:
            old.smtp.close()  # no QUIT: a server that dropped it would not answer one
        if session is not None:
            session.reused = True
        return session

    def give_back(self, server: Hashable, session: KeptSession) -> None:
        """A session whose last transaction ended in a 2xx: kept for the next message."""
        session.sent += 1
        session.idle_since = self.clock()
        keep = session.sent < self.max_messages
        with self._lock:
            kept = self._idle.setdefault(server, [])
            if keep and os.getpid() == self._pid and len(kept) < self.per_server:
                kept.append(session)
                return
        close(session.smtp)

    def close_all(self) -> None:
        """Close every idle session (at exit: without QUIT, nothing waits on a server)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for kept in idle.values():
            for session in kept:
                session.smtp.close()

    def idle(self) -> int:
        with self._lock:
            return sum(len(kept) for kept in self._idle.values())

    def _stale(self) -> list[KeptSession]:
        """Sessions idle too long (any server), taken out to be closed; with the lock held."""
        if os.getpid() != self._pid:  # forked: the parent's sockets are not this process's
            self._idle, self._pid = {}, os.getpid()
            return []
        oldest = self.clock() - self.idle_seconds
        stale = []
        for server, kept in list(self._idle.items()):
            stale += [s for s in kept if s.idle_since < oldest]
            kept[:] = [s for s in kept if s.idle_since >= oldest]
            if not kept:
                del self._idle[server]
        return stale


def close(smtp: smtplib.SMTP) -> None:
    """Say goodbye if the server still listens; the outcome is already known either way."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


SESSIONS = Sessions()
atexit.register(SESSIONS.close_all)
