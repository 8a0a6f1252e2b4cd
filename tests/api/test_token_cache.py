"""The cache of verified access tokens never stretches a token's expiry or scope."""

from __future__ import annotations

import time

from app.auth import VerifiedTokens

HEADER = "Bearer a.b.c"


def test_a_verified_token_is_found_again_for_a_scope_it_holds() -> None:
    tokens = VerifiedTokens()
    token = {"exp": time.time() + 60, "scope": "consent:read audit:read", "client_id": "c"}
    tokens.put(HEADER, token)

    assert tokens.get(HEADER, "audit:read") is token


def test_a_cached_token_is_not_used_for_a_scope_it_lacks() -> None:
    tokens = VerifiedTokens()
    tokens.put(HEADER, {"exp": time.time() + 60, "scope": "consent:read", "client_id": "c"})

    assert tokens.get(HEADER, "consent:write") is None


def test_a_cached_token_is_not_used_after_it_expires() -> None:
    tokens = VerifiedTokens()
    tokens.put(HEADER, {"exp": time.time() - 1, "scope": "consent:read", "client_id": "c"})

    assert tokens.get(HEADER, "consent:read") is None


def test_the_cache_keeps_only_its_size() -> None:
    tokens = VerifiedTokens(size=2)
    for n in range(3):
        tokens.put(f"Bearer {n}", {"exp": time.time() + 60, "scope": "x", "client_id": "c"})

    assert tokens.get("Bearer 0", "x") is None
    assert tokens.get("Bearer 2", "x") is not None


def test_the_limiter_reads_the_client_of_a_cached_token_whatever_its_scope_or_expiry() -> None:
    tokens = VerifiedTokens()
    tokens.put(HEADER, {"exp": time.time() - 1, "scope": "consent:read", "client_id": "crm"})

    assert tokens.client_of(HEADER) == "crm"
    assert tokens.client_of("Bearer never.seen.here") is None
