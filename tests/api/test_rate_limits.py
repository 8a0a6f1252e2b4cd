"""Rate limits: per API client on /v1, per IP on the token endpoint and public forms."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import nullcontext

import pytest
import redis
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import ConfigError
from app.extensions import csrf
from app.limits import public_form_limit
from app.services import clients
from tests.redis_store import REDIS_URL, key_prefix, needs_redis

# Every check these tests make is answered by both paths and compared (tests/check_parity.py).
pytestmark = pytest.mark.usefixtures("check_parity")

CHECK = "/v1/consent/check?email=a@example.org&channel=email&category=newsletter"


def _token(http: FlaskClient, clean_db: Engine, ip: str = "198.51.100.1") -> str:
    with Session(clean_db) as session:
        credentials = clients.create(session, "crm", "consent:read", iterations=1000)
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
        environ_base={"REMOTE_ADDR": ip},
    )
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def _limited_app(make_app: Callable[..., Flask], **overrides: object) -> Flask:
    return make_app(ratelimit_enabled=True, **overrides)


def test_each_api_client_has_its_own_budget_and_a_429_is_a_problem(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    http = _limited_app(make_app, api_rate_limit="3/minute").test_client()
    first, second = _token(http, clean_db), _token(http, clean_db)
    answers = [http.get(CHECK, headers={"Authorization": f"Bearer {first}"}) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert answers[0].headers["RateLimit-Remaining"] == "2"
    assert "Retry-After" not in answers[0].headers
    refused = answers[-1]
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["status"] == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 61
    assert 0 <= int(refused.headers["RateLimit-Reset"]) <= 61
    assert refused.headers["RateLimit-Remaining"] == "0"
    # Another client, even from the same address, is untouched.
    assert http.get(CHECK, headers={"Authorization": f"Bearer {second}"}).status_code == 200


def test_the_limiters_key_comes_from_the_verified_token_cache(
    make_app: Callable[..., Flask], clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a token is verified, the limiter's key is read from the cache: a second decode of
    the JWT per request is gone, and the client keeps its own budget."""
    from joserfc import jwt

    http = _limited_app(make_app, api_rate_limit="2/minute").test_client()
    token = _token(http, clean_db)
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get(CHECK, headers=headers).status_code == 200

    def no_decode(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the limiter decoded a token the cache already held")

    monkeypatch.setattr(jwt, "decode", no_decode)
    second = http.get(CHECK, headers=headers)
    assert second.status_code == 200
    assert second.headers["RateLimit-Remaining"] == "0"
    assert http.get(CHECK, headers=headers).status_code == 429


def test_the_api_budget_is_shared_by_every_v1_route(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    http = _limited_app(make_app, api_rate_limit="2/minute").test_client()
    headers = {"Authorization": f"Bearer {_token(http, clean_db)}"}
    assert http.get(CHECK, headers=headers).status_code == 200
    assert http.get("/v1/catalog", headers=headers).status_code == 200
    assert http.get("/v1/notices", headers=headers).status_code == 429


def test_forged_tokens_do_not_spend_a_real_clients_budget(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    http = _limited_app(make_app, api_rate_limit="2/minute").test_client()
    token = _token(http, clean_db)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        response = http.get(
            CHECK,
            headers={"Authorization": f"Bearer {forged}"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert response.status_code == 401
    assert http.get(CHECK, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_token_endpoint_is_limited_per_ip(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    http = _limited_app(make_app, token_rate_limit="2/minute").test_client()
    form = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}
    statuses = [
        http.post("/oauth/token", data=form, environ_base={"REMOTE_ADDR": "203.0.113.5"})
        for _ in range(3)
    ]
    assert [r.status_code for r in statuses][:2] == [401, 401]  # invalid_client, not limited
    assert statuses[-1].status_code == 429
    assert statuses[-1].mimetype == "application/json"  # RFC 6749 §5.2, as OAuth clients read
    assert statuses[-1].get_json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in statuses[-1].headers
    other = http.post("/oauth/token", data=form, environ_base={"REMOTE_ADDR": "203.0.113.6"})
    assert other.status_code == 401


def _app_with_a_public_form(make_app: Callable[..., Flask], **overrides: object) -> Flask:
    app = _limited_app(make_app, **overrides)
    bp = Blueprint(f"form_{uuid.uuid4().hex}", __name__)

    @bp.route("/test-form", methods=["GET", "POST"])
    @public_form_limit
    def form() -> str:
        return "ok"

    @bp.route("/test-other-form", methods=["POST"])
    @public_form_limit
    def other_form() -> str:
        return "ok"

    csrf.exempt(bp)  # the real forms carry a CSRF token; these stand-ins need none
    app.register_blueprint(bp)
    return app


def test_public_forms_share_one_per_ip_limit_on_posts_and_answer_a_page(
    make_app: Callable[..., Flask],
) -> None:
    http = _app_with_a_public_form(make_app, public_form_rate="2/minute").test_client()
    ip = {"REMOTE_ADDR": "192.0.2.10"}
    assert http.post("/test-form", environ_base=ip).status_code == 200
    assert http.post("/test-other-form", environ_base=ip).status_code == 200
    refused = http.post("/test-form", environ_base=ip)
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "Too many requests" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    # Showing the form is not counted; another address has its own budget.
    assert http.get("/test-form", environ_base=ip).status_code == 200
    assert http.post("/test-form", environ_base={"REMOTE_ADDR": "192.0.2.11"}).status_code == 200


def test_limits_are_off_when_disabled(make_app: Callable[..., Flask], clean_db: Engine) -> None:
    http = make_app(ratelimit_enabled=False, api_rate_limit="1/minute").test_client()
    headers = {"Authorization": f"Bearer {_token(http, clean_db)}"}
    assert all(http.get(CHECK, headers=headers).status_code == 200 for _ in range(3))


def test_a_malformed_limit_is_refused_at_start(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigError, match="API_RATE_LIMIT"):
        make_app(api_rate_limit="lots")


@needs_redis
def test_redis_storage_shares_the_count_between_instances(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    with key_prefix() as prefix:
        overrides = {
            "ratelimit_storage_url": REDIS_URL,
            "ratelimit_key_prefix": prefix,
            "api_rate_limit": "3/minute",
        }
        first = _limited_app(make_app, **overrides).test_client()
        headers = {"Authorization": f"Bearer {_token(first, clean_db)}"}
        assert [first.get(CHECK, headers=headers).status_code for _ in range(2)] == [200, 200]
        # A second instance (a new app, as another process would build) sees the same count.
        second = _limited_app(make_app, **overrides).test_client()
        assert [second.get(CHECK, headers=headers).status_code for _ in range(2)] == [200, 429]
        keys = redis.Redis.from_url(REDIS_URL).keys(f"{prefix}*")
        assert keys


def test_an_unreachable_limit_store_does_not_stop_the_api(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    app = _limited_app(
        make_app,
        ratelimit_storage_url="redis://127.0.0.1:9/0?socket_connect_timeout=0.2",
        api_rate_limit="2/minute",
    )
    http = app.test_client()
    headers = {"Authorization": f"Bearer {_token(http, clean_db)}"}
    # In-memory fallback: still answered, still limited.
    assert [http.get(CHECK, headers=headers).status_code for _ in range(3)] == [200, 200, 429]


def test_an_app_made_after_a_store_failed_counts_in_its_own_store(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    """The limiter is one object every app shares: a store that failed under the last app must
    not leave the next app counting in memory until Flask-Limiter's back-off retries (a test
    that followed the one above flaked so)."""
    from app.extensions import limiter
    from app.limits import DatabaseStorage

    failing = _limited_app(
        make_app, ratelimit_storage_url="redis://127.0.0.1:9/0?socket_connect_timeout=0.2"
    ).test_client()
    failing.get(CHECK, headers={"Authorization": f"Bearer {_token(failing, clean_db)}"})
    assert limiter._storage_dead
    http = _limited_app(
        make_app, ratelimit_storage_url="database://", api_rate_limit="5/minute"
    ).test_client()
    headers = {"Authorization": f"Bearer {_token(http, clean_db)}"}
    answers = [http.get(CHECK, headers=headers) for _ in range(2)]
    assert not limiter._storage_dead
    assert isinstance(limiter.limiter.storage, DatabaseStorage)
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["4", "3"]


@pytest.mark.parametrize("store", ["database", pytest.param("redis", marks=needs_redis)])
def test_every_route_takes_a_large_limit_a_lease_at_a_time(
    make_app: Callable[..., Flask], clean_db: Engine, store: str
) -> None:
    """Flask's path too (here GET /v1/catalog): 8,000 a minute is counted 16 hits a trip,
    numbered from the shared count, and the headers are each request's own number; a small
    limit (the token endpoint's 60 a minute) is still counted a trip a hit."""
    from typing import Any

    from app.extensions import limiter

    with key_prefix() if store == "redis" else nullcontext("") as prefix:
        http = _limited_app(
            make_app,
            api_rate_limit="8000/minute",
            ratelimit_storage_url=REDIS_URL if store == "redis" else "database://",
            ratelimit_key_prefix=prefix or "consent-center",
        ).test_client()
        storage: Any = limiter.limiter.storage
        counted, trips = storage.counted, []

        def noted(key: str, expiry: int, amount: int = 1) -> Any:
            trips.append(("/client:" in key, amount))
            return counted(key, expiry, amount)

        storage.counted = noted
        headers = {"Authorization": f"Bearer {_token(http, clean_db)}"}
        answers = [http.get("/v1/catalog", headers=headers) for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert [int(a.headers["RateLimit-Remaining"]) for a in answers] == list(range(7999, 7979, -1))
    assert all(0 < int(a.headers["RateLimit-Reset"]) <= 61 for a in answers)
    assert [amount for per_client, amount in trips if per_client] == [16, 16]
    assert [amount for per_client, amount in trips if not per_client] == [1]
