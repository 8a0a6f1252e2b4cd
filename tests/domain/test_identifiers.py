"""Identifier normalisation (with properties) and the keyed lookup."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import (
    email_keys,
    identifier_hmac,
    mailbox,
    normalize_email,
    normalize_phone,
    own_email_keys,
    validated_email,
)

local = st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True)
domain = st.from_regex(r"[A-Za-z0-9-]{1,15}\.[A-Za-z]{2,6}", fullmatch=True)


@given(local, domain, st.sampled_from(["", " ", "  ", "\t"]))
def test_email_case_and_surrounding_space_do_not_matter(user: str, host: str, pad: str) -> None:
    email = f"{user}@{host}"
    padded = _outcome(normalize_email, pad + email.upper() + pad)
    assert padded == _outcome(normalize_email, email.lower())


@given(local, domain)
def test_email_normalisation_is_idempotent(user: str, host: str) -> None:
    once = _outcome(normalize_email, f"{user}@{host}")
    assert once is None or normalize_email(once) == once


def test_what_is_not_an_address_is_refused() -> None:
    with pytest.raises(InvalidIdentifierError):
        normalize_email("not-an-email")
    assert normalize_email("  Ada@Example.ORG ") == "ada@example.org"


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
    normalized = []
    for r in raw:
        try:
            normalized.append(normalize_email(r))
        except InvalidIdentifierError:
            continue
    keys, mailbox_keys = email_keys(b"k", normalized)
    assert keys == [identifier_hmac(b"k", "email", n) for n in normalized]
    assert mailbox_keys == [identifier_hmac(b"k", "mailbox", mailbox(n)) for n in normalized]


def _outcome(normalise: Callable[[str], str], raw: str) -> str | None:
    try:
        return normalise(raw)
    except InvalidIdentifierError:
        return None


# Everything the fast path looks at, and what sends it to the full path: case, dots, dashes,
# IDNA labels, special-use names, lengths, non-ASCII letters and NFD marks.
_parts = st.sampled_from(
    [
        "a",
        "Z",
        "0",
        "9",
        ".",
        "..",
        "-",
        "--",
        "_",
        "+",
        "@",
        "xn--",
        "bcher-kva",
        "test",
        "local",
        "com",
        "de",
        "org",
        "ü",
        "u\u0308",
        "é",
        "ß",
        " ",
        "\t",
        "!",
        '"',
        "a" * 63,
    ]
)
_emails = st.one_of(
    st.lists(_parts, max_size=12).map("".join),
    st.builds(lambda u, h: f"{u}@{h}", local, domain),
    st.text(max_size=30),
)


@given(_emails)
def test_the_plain_address_shortcut_gives_email_validators_own_form(raw: str) -> None:
    assert _outcome(normalize_email, raw) == _outcome(validated_email, raw)


@pytest.mark.parametrize(
    "variant",
    [
        "josé.x@bücher.de",
        "JOSÉ.X@BÜCHER.DE",
        "  josé.x@bücher.de\t",
        "jose\u0301.x@bu\u0308cher.de",  # NFD
        "josé.x@xn--bcher-kva.de",  # punycode
        "José.X@XN--BCHER-KVA.DE",
    ],
)
def test_every_variant_of_an_address_has_one_normal_form(variant: str) -> None:
    assert normalize_email(variant) == "josé.x@bücher.de"
    assert validated_email(variant) == "josé.x@bücher.de"


def test_plus_and_dot_variants_share_one_mailbox() -> None:
    assert mailbox("a.b+promo@example.org") == mailbox("ab@example.org") == "ab@example.org"
    assert mailbox("a.b+x@googlemail.com") == "ab@gmail.com"


def test_a_number_longer_than_e164_allows_is_refused() -> None:
    # Found by the property test: phonenumbers calls this 16-digit German number valid.
    with pytest.raises(InvalidIdentifierError):
        normalize_phone("+4920100000000000")


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
@given(values=st.lists(st.text(max_size=40), max_size=10))
def test_batch_keys_are_the_hmac_of_any_secret(length: int, values: list[str]) -> None:
    # Secrets longer than SHA-256's block (64 bytes) are hashed first (RFC 2104).
    secret = bytes(range(length))
    assert own_email_keys(secret, values) == [identifier_hmac(secret, "email", v) for v in values]
