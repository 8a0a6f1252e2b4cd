"""The fast check (app/api/fastcheck.py) answers exactly as the Flask view, byte for byte.

The existing check tests (consent, auth, auth edges, rate limits, hostile input) run every
check through both paths with the `check_parity` fixture (revocation within the refresh time:
test_auth's test_a_revoked_client_is_refused, whose second check has a cached token); here,
the cases that say the harness is not vacuous, the hand-overs, limits counted in the database
and shared across apps, and a property test over generated subjects and questions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from app.api.fastcheck import FastCheck
from app.services.consent import notices
from tests.api.test_rate_limits import _token
from tests.check_parity import Tally
from tests.conftest import ApiClient
from tests.web.pages import notices_path

NEWSLETTER = "channel=email&category=newsletter"


@pytest.fixture(autouse=True)
def published(clean_db: Engine) -> None:
    with Session(clean_db) as session:
        notices.publish_file(session, notices_path())


def _subject(api: ApiClient, email: str) -> str:
    response = api.post(
        "/v1/subscriptions",
        json={"email": email, "categories": ["newsletter"], "channel": "email", "locale": "en"},
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["subject_id"])


def _patch(api: ApiClient, subject_id: str, changes: list[dict[str, str]]) -> None:
    response = api.patch(
        f"/v1/subjects/{subject_id}/preferences",
        json={"changes": changes, "source": "crm", "method": "import"},
    )
    assert response.status_code in (200, 410), response.get_json()


def test_the_common_checks_are_served_by_both_paths_alike(
    api: ApiClient, check_parity: Tally
) -> None:
    subject_id = _subject(api, "ada@example.org")
    _patch(
        api,
        subject_id,
        [
            {"channel": "email", "status": "granted"},
            {"channel": "email", "category": "newsletter", "status": "granted"},
            {"purpose": "personalization", "status": "granted"},
        ],
    )
    api.post(
        f"/v1/subjects/{subject_id}/identifiers", json={"kind": "external_id", "value": "crm-1"}
    )
    api.get(f"/v1/consent/check?email=x@example.org&{NEWSLETTER}")  # caches the token
    queries = [
        f"email=ada@example.org&{NEWSLETTER}",
        f"email=%20ADA@Example.ORG%20&{NEWSLETTER}",
        f"email=nobody@example.org&{NEWSLETTER}",
        f"subject_id={subject_id}&{NEWSLETTER}",
        f"subject_id={uuid.uuid4()}&{NEWSLETTER}",
        f"external_id=crm-1&{NEWSLETTER}",
        "external_id=crm-1&channel=push&category=newsletter",
        "email=ada@example.org&purpose=personalization",
        "phone=%2B4915112345678&channel=sms&category=offers",
        "phone=015112345678&country=DE&channel=sms&category=offers",
    ]
    before = check_parity.compared
    for query in queries:
        response = api.get(f"/v1/consent/check?{query}")
        assert response.status_code == 200, (query, response.get_json())
    assert check_parity.compared - before == len(queries)
    assert api.get(f"/v1/consent/check?email=ada@example.org&{NEWSLETTER}").get_json()[
        "reason"
    ] in ("granted", "pending_confirmation")


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        (f"email=ada@example.org&email=b@example.org&{NEWSLETTER}", {}, 200),
        (f"email=ada@example.org&{NEWSLETTER}&shoe=9", {}, 422),
        (f"email=not-an-address&{NEWSLETTER}", {}, 422),
        ("email=ada@example.org&channel=email&category=nope", {}, 422),
        ("email=ada@example.org&channel=email", {}, 422),
        (f"email=&{NEWSLETTER}", {}, 422),
        (f"email=ada%00@example.org&{NEWSLETTER}", {}, 422),
        (f"email=ada%FF@example.org&{NEWSLETTER}", {}, 200),  # kept percent-encoded
        (f"email=ada@example.org&subject_id={uuid.uuid4()}&{NEWSLETTER}", {}, 422),
        (f"email=ada@example.org&{NEWSLETTER}", {"Authorization": "Bearer forged"}, 401),
        (f"email=ada@example.org&{NEWSLETTER}", {"Authorization": ""}, 401),
    ],
)
def test_anything_unusual_is_handed_to_flask(
    api: ApiClient, check_parity: Tally, query: str, headers: dict[str, str], status: int
) -> None:
    api.get(f"/v1/consent/check?email=x@example.org&{NEWSLETTER}")  # caches the token
    handed = check_parity.handed_over
    response = api.get(f"/v1/consent/check?{query}", headers=headers)
    assert response.status_code == status
    if status != 200:
        assert response.mimetype == "application/problem+json"
    assert check_parity.handed_over == handed + 1


def test_a_head_and_a_token_without_the_scope_go_to_flask(
    api: ApiClient, make_api: Callable[..., ApiClient], check_parity: Tally
) -> None:
    url = f"/v1/consent/check?email=x@example.org&{NEWSLETTER}"
    assert api.get(url).status_code == 200
    assert api.http.head(url, headers=api.headers).status_code == 200
    other = make_api("subjects:manage")
    for _ in range(2):
        refused = other.get(url)
        assert refused.status_code == 403
        assert refused.mimetype == "application/problem+json"
    # Only the first GET: once Flask had cached its token, the fast path was asked again.
    assert check_parity.compared == 1


def test_the_fast_read_is_its_one_statement_with_no_transaction_around_it(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"/v1/consent/check?email=ada@example.org&{NEWSLETTER}"
    _subject(api, "ada@example.org")
    api.get(url)  # caches the token
    served: list[bool] = []
    serve = FastCheck.serve

    def noted(self: FastCheck, environ: Any) -> Any:
        answer = serve(self, environ)
        served.append(answer is not None)
        return answer

    monkeypatch.setattr(FastCheck, "serve", noted)
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(Engine, "before_cursor_execute", note)
    try:
        response = api.get(url)
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert response.status_code == 200
    assert served == [True]
    assert sent == ["SELECT"]


def test_limits_are_counted_once_per_request_and_shared_between_apps(
    make_app: Callable[..., Flask], clean_db: Engine, check_parity: Tally
) -> None:
    """Database storage: what every worker and instance counts in (two apps stand for two)."""
    first = make_app(
        ratelimit_enabled=True, api_rate_limit="4/minute", ratelimit_storage_url="database://"
    )
    http = first.test_client()
    token = _token(http, clean_db)  # Flask's answers the first check: the token is new
    url = f"/v1/consent/check?email=x@example.org&{NEWSLETTER}"
    auth = {"Authorization": f"Bearer {token}"}
    answers = [http.get(url, headers=auth) for _ in range(2)]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["3", "2"]
    assert check_parity.fast_only == 1  # the second, served fast: its token was cached
    second = make_app(
        ratelimit_enabled=True, api_rate_limit="4/minute", ratelimit_storage_url="database://"
    )
    other = second.test_client()
    answers = [other.get(url, headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[-1].mimetype == "application/problem+json"
    assert check_parity.fast_only == 2


def test_a_large_limit_is_counted_a_lease_at_a_time_and_shared_between_apps(
    make_app: Callable[..., Flask], clean_db: Engine, check_parity: Tally
) -> None:
    """8,000 a minute: each app (a worker) takes 16 hits from the shared count in one trip
    and numbers its requests from them, by either path; another app's first hit comes after
    every hit the first app took, used or not."""
    from app.extensions import limiter

    def app() -> Flask:
        return make_app(
            ratelimit_enabled=True,
            api_rate_limit="8000/minute",
            ratelimit_storage_url="database://",
        )

    def trips() -> list[int]:
        storage: Any = limiter.limiter.storage
        counted, seen = storage.counted, []

        def noted(key: str, expiry: int, amount: int = 1) -> Any:
            if "/client:" in key:  # not the token endpoint's own limit
                seen.append(amount)
            return counted(key, expiry, amount)

        storage.counted = noted
        return seen

    http = app().test_client()
    seen = trips()
    token = _token(http, clean_db)
    url = f"/v1/consent/check?email=x@example.org&{NEWSLETTER}"
    auth = {"Authorization": f"Bearer {token}"}
    assert http.get(url, headers=auth).headers["RateLimit-Remaining"] == "7999"  # Flask's: 1
    answers = [http.get(url, headers=auth) for _ in range(20)]
    assert check_parity.fast_only == 20
    assert [a.status_code for a in answers] == [200] * 20
    assert [int(a.headers["RateLimit-Remaining"]) for a in answers] == list(range(7998, 7978, -1))
    assert seen == [16, 16]  # hits 1-16 (Flask's path took the first) and 17-32
    # The first app used hits up to 21 and holds 22-32 unused: the other app's come after.
    other = app().test_client()
    seen = trips()
    answers = [other.get(url, headers=auth) for _ in range(2)]  # Flask's (33), then fast
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["7967", "7966"]
    assert seen == [16]  # hits 33-48, by both paths


EMAILS = ["ada@example.org", "ADA@example.org ", "a.da+x@gmail.com", "ada@gmail.com", "b@x.io"]
TOPICS: list[dict[str, str]] = [
    {"channel": "email"},
    {"channel": "email", "category": "newsletter"},
    {"channel": "email", "category": "offers"},
    {"channel": "sms"},
    {"channel": "sms", "category": "offers"},
    {"purpose": "personalization"},
    {"purpose": "partner_sharing"},
]
ACTIONS = st.one_of(
    st.tuples(st.just("patch"), st.sampled_from(TOPICS), st.sampled_from(["granted", "withdrawn"])),
    st.tuples(st.just("unsubscribe_all")),
    st.tuples(st.just("erase")),
    st.tuples(st.just("phone"), st.sampled_from(["+4915112345678", "+14155550100"])),
    st.tuples(st.just("external_id"), st.sampled_from(["crm-1", "crm-2"])),
)
SUBJECTS = st.lists(
    st.tuples(st.sampled_from(EMAILS), st.lists(ACTIONS, max_size=4)), min_size=1, max_size=3
)
WHO = st.one_of(
    st.sampled_from(EMAILS).map(lambda e: ("email", e)),
    st.sampled_from(["not-an-address", "", "a@b", "x@example.org\x00"]).map(lambda e: ("email", e)),
    st.sampled_from(["+4915112345678", "015112345678", "+14155550100", "12"]).map(
        lambda p: ("phone", p)
    ),
    st.sampled_from(["crm-1", "crm-2", "nobody"]).map(lambda x: ("external_id", x)),
    st.just(("subject_id", "known")),
    st.sampled_from([str(uuid.UUID(int=7)), "not-a-uuid"]).map(lambda x: ("subject_id", x)),
)
WHAT = st.one_of(
    st.sampled_from(
        [
            ("email", "newsletter"),
            ("email", "offers"),
            ("sms", "newsletter"),
            ("push", "newsletter"),
            ("email", "order_updates"),
            ("sms", "offers"),
            ("email", "nope"),
            ("fax", "newsletter"),
        ]
    ).map(lambda pair: {"channel": pair[0], "category": pair[1]}),
    st.sampled_from(["personalization", "partner_sharing", "nope"]).map(lambda p: {"purpose": p}),
)
EXTRA = st.sampled_from([[], [], [("country", "DE")], [("country", "XX")], [("lang", "de")]])


def _act(api: ApiClient, subject_id: str, action: tuple[Any, ...]) -> None:
    if action[0] == "patch":
        _patch(api, subject_id, [action[1] | {"status": action[2]}])
    elif action[0] == "unsubscribe_all":
        api.post(f"/v1/subjects/{subject_id}/unsubscribe-all", json={"source": "crm"})
    elif action[0] == "erase":
        api.delete(f"/v1/subjects/{subject_id}")
    else:
        api.post(
            f"/v1/subjects/{subject_id}/identifiers", json={"kind": action[0], "value": action[1]}
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(subjects=SUBJECTS, questions=st.lists(st.tuples(WHO, WHAT, EXTRA), min_size=1, max_size=4))
def test_generated_subjects_and_questions_get_the_same_bytes_from_both_paths(
    api: ApiClient,
    check_parity: Tally,
    subjects: list[tuple[str, list[tuple[Any, ...]]]],
    questions: list[tuple[tuple[str, str], dict[str, str], list[tuple[str, str]]]],
) -> None:
    known = []
    for email, actions in subjects:
        subject_id = _subject(api, email)
        known.append(subject_id)
        for action in actions:
            _act(api, subject_id, action)
    api.get(f"/v1/consent/check?email=x@example.org&{NEWSLETTER}")  # caches the token
    for (kind, value), what, extra in questions:
        if value == "known":
            value = known[0]
        pairs = [(kind, value), *what.items(), *extra]
        query = "&".join(f"{k}={quote(v, safe='@+')}" for k, v in pairs)
        before = check_parity.compared + check_parity.handed_over
        response = api.get(f"/v1/consent/check?{query}")
        assert response.status_code in (200, 422), (query, response.get_json())
        assert check_parity.compared + check_parity.handed_over == before + 1
