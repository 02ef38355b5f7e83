"""Customer refs as we store them, and as a platform client reads them.

A platform names a customer by its id (kept as the platform spells it) or, when
an event carries no id, by an email address: the platform module then hands
over the transient ref ``email:<address>``. No table ever keys on an address:
``stored_refs`` turns it into ``email:h:<hex>``, the HMAC-SHA256 of the address
under this installation's customer key, and the address itself is kept only in
the customer's encrypted contact (``customer_points.contact``). ``platform_ref``
does the reverse for a client that looks customers up by email (Appstle).

The customer key is random, made once per installation and stored sealed with
RELAY_SECRET_KEY (``instance_keys``), not derived from the secret key itself:
rotating RELAY_SECRET_KEY (a new key in front, the old ones still decrypting)
must not rename every customer known by email.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy.orm import Session

from worker.errors import PermanentError
from worker.points import CustomerContact
from worker.runtime import Runtime
from worker.storage.models import CustomerPoints, InstanceKey, utcnow
from worker.storage.upsert import insert_ignore

EMAIL_PREFIX = "email:"
HASHED_PREFIX = "email:h:"
KEY_NAME = "customer_hash"


def address_in(ref: str) -> str | None:
    """The address of a transient ``email:<address>`` ref; None for ids and hashes."""
    if ref.startswith(EMAIL_PREFIX) and "@" in ref:
        return ref[len(EMAIL_PREFIX) :]
    return None


def is_pseudonym(ref: str) -> bool:
    return ref.startswith(HASHED_PREFIX)


class Pseudonyms:
    """Keyed hashes of addresses: the same address gives the same ref, and nobody
    without the key can test a guessed address against a stored ref."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def of_address(self, address: str) -> str:
        normalised = address.strip().lower().encode()
        return HASHED_PREFIX + hmac.new(self._key, normalised, hashlib.sha256).hexdigest()

    def stored_ref(self, ref: str) -> str:
        address = address_in(ref)
        return self.of_address(address) if address else ref


def pseudonyms(runtime: Runtime, session: Session) -> Pseudonyms:
    """This installation's ``Pseudonyms``; the key is made on first use.

    Read through the caller's session (a second transaction would wait on SQLite's
    write lock). A key this transaction inserted is not cached: if the transaction
    rolled back, another process would make a different one.
    """
    cached = runtime.keys.get(KEY_NAME)
    if cached is not None:
        return Pseudonyms(cached)
    stored = session.get(InstanceKey, KEY_NAME)
    if stored is None:
        sealed = runtime.cipher.seal({"key": secrets.token_hex(32)})
        insert_ignore(
            session, InstanceKey, {"name": KEY_NAME, "sealed": sealed, "created_at": utcnow()}
        )
        return Pseudonyms(_key(runtime, session.get_one(InstanceKey, KEY_NAME)))
    runtime.keys[KEY_NAME] = key = _key(runtime, stored)
    return Pseudonyms(key)


def _key(runtime: Runtime, stored: InstanceKey) -> bytes:
    return bytes.fromhex(runtime.cipher.open(stored.sealed)["key"])


def stored_refs(runtime: Runtime, session: Session, refs: Iterable[str]) -> list[str]:
    """The refs as rows key on them (the key is read only when an address is among them)."""
    refs = list(refs)
    if not any(address_in(ref) for ref in refs):
        return refs
    names = pseudonyms(runtime, session)
    return [names.stored_ref(ref) for ref in refs]


def contact_for(ref: str, contact: CustomerContact | None) -> CustomerContact | None:
    """What to remember about the customer: an event's contact, plus the address a
    customer known by email was named by (the only place that address is kept)."""
    address = address_in(ref)
    if address is None:
        return contact
    return replace(contact or CustomerContact(), email=address)


def platform_ref(runtime: Runtime, session: Session, store_id: int, customer_id: str) -> str:
    """The ref a platform client is given: an id as stored, or ``email:<address>``
    read from the encrypted contact for a customer stored under a hash."""
    if not is_pseudonym(customer_id):
        return customer_id
    row = session.get(CustomerPoints, (store_id, customer_id))
    address = runtime.cipher.open(row.contact).get("email") if row is not None else None
    if not address:
        raise PermanentError("no email address is stored for this customer (forgotten?)")
    return EMAIL_PREFIX + str(address)
