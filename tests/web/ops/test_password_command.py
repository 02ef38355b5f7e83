"""``loyalty-relay ops-password``: a hash of a password read from standard input."""

from __future__ import annotations

from click.testing import CliRunner
from werkzeug.security import check_password_hash

from worker.cli.app import main

PASSWORD = "correct horse battery staple"


def test_it_prints_a_hash_of_the_password_read_from_stdin() -> None:
    result = CliRunner().invoke(main, ["ops-password", "--user", "ana"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    user, _, hashed = result.output.strip().partition(":")
    assert user == "ana" and check_password_hash(hashed, PASSWORD)
    assert PASSWORD not in result.output


def test_it_refuses_a_short_password() -> None:
    result = CliRunner().invoke(main, ["ops-password"], input="short\n")
    assert result.exit_code == 2 and "at least 12 characters" in result.output


def test_it_refuses_a_user_name_that_would_break_the_list() -> None:
    result = CliRunner().invoke(main, ["ops-password", "--user", "a:b"], input=PASSWORD + "\n")
    assert result.exit_code == 2 and "Traceback" not in result.output
