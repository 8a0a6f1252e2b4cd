"""Identifier normalisation (with properties) and the keyed lookup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import (
    email_hmacs,
    identifier_hmac,
    normalize_email,
    normalize_phone,
    validate_email_address,
)

local = st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True)
domain = st.from_regex(r"[A-Za-z0-9-]{1,15}\.[A-Za-z]{2,6}", fullmatch=True)


@given(local, domain, st.sampled_from(["", " ", "  ", "\t"]))
def test_email_case_and_surrounding_space_do_not_matter(user: str, host: str, pad: str) -> None:
    email = f"{user}@{host}"
    assert normalize_email(pad + email.upper() + pad) == normalize_email(email.lower())


@given(local, domain)
def test_email_normalisation_is_idempotent(user: str, host: str) -> None:
    once = normalize_email(f"{user}@{host}")
    assert normalize_email(once) == once


def test_strict_intake_rejects_what_is_not_an_address() -> None:
    with pytest.raises(InvalidIdentifierError):
        validate_email_address("not-an-email")
    assert validate_email_address("  Ada@Example.ORG ") == "ada@example.org"


@pytest.mark.parametrize(
    ("raw", "region"),
    [("+49 151 12345678", None), ("0151 12345678", "DE"), ("+4915112345678", None)],
)
def test_phones_are_stored_in_e164(raw: str, region: str | None) -> None:
    assert normalize_phone(raw, region) == "+4915112345678"


@pytest.mark.parametrize("raw", ["12", "hello", "+1 000"])
def test_a_malformed_phone_is_an_error(raw: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        normalize_phone(raw)


def test_the_lookup_key_depends_on_the_secret_and_the_kind() -> None:
    assert identifier_hmac(b"a", "email", "x@y.z") != identifier_hmac(b"b", "email", "x@y.z")
    assert identifier_hmac(b"a", "email", "x") != identifier_hmac(b"a", "external_id", "x")
    assert len(identifier_hmac(b"a", "email", "x@y.z")) == 64


@given(st.lists(st.tuples(local, domain, st.sampled_from(["", " ", "\t"])), max_size=20))
def test_batch_email_keys_equal_the_one_by_one_keys(addresses: list[tuple[str, str, str]]) -> None:
    raw = [f"{pad}{user}@{host.upper()}{pad}" for user, host, pad in addresses]
    expected = [identifier_hmac(b"k", "email", normalize_email(r)) for r in raw]
    assert email_hmacs(b"k", raw) == expected


def test_a_number_longer_than_e164_allows_is_refused() -> None:
    # Found by the property test: phonenumbers calls this 16-digit German number valid.
    with pytest.raises(InvalidIdentifierError):
        normalize_phone("+4920100000000000")
