"""``loyalty-relay ops-password``: a password hash for RELAY_OPS_USERS.

The password is read from a hidden prompt (typed twice) or, when standard input
is not a terminal, from its first line — never from the command line, where it
would stay in shell history and in every process listing.
"""

from __future__ import annotations

import sys

import click
from werkzeug.security import generate_password_hash

MIN_PASSWORD = 12


@click.command("ops-password")
@click.option("--user", default=None, help="Print USER:hash, ready for RELAY_OPS_USERS.")
def ops_password(user: str | None) -> None:
    """Print a password hash for the /ops dashboard (RELAY_OPS_USERS=user:hash,…)."""
    if user is not None and (not user.strip() or ":" in user or "," in user):
        raise click.BadParameter("a user name without ':' or ','", param_hint="--user")
    password = _read_password()
    if len(password) < MIN_PASSWORD:
        raise click.UsageError(f"the password must be at least {MIN_PASSWORD} characters")
    hashed = generate_password_hash(password)
    click.echo(f"{user.strip()}:{hashed}" if user else hashed)


def _read_password() -> str:
    if sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    return sys.stdin.readline().rstrip("\r\n")
