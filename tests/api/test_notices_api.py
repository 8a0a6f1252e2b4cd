"""Publishing wording: a scope of its own, the page's text by locale, versions per locale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.services.consent import notices
from tests.conftest import ApiClient

NOTICE = {
    "key": "marketing-consent",
    "version": "2030-01",
    "locale": "en",
    "title": "Marketing",
    "text": "We would like to send you offers.",
}


def publish(session: Session, notice: dict[str, str], now: datetime) -> None:
    notices.publish(
        session,
        key=notice["key"],
        version=notice["version"],
        locale=notice["locale"],
        title=notice["title"],
        text=notice["text"],
        now=now,
    )


def test_consent_write_cannot_publish_a_notice(make_api: Callable[..., ApiClient]) -> None:
    writer = make_api("consent:read consent:write")
    response = writer.post("/v1/notices", json=NOTICE)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_notices_publish_publishes_a_notice(make_api: Callable[..., ApiClient]) -> None:
    publisher = make_api("notices:publish")
    assert publisher.post("/v1/notices", json=NOTICE).status_code == 201


def test_audit_read_cannot_append_a_checkpoint(make_api: Callable[..., ApiClient]) -> None:
    reader = make_api("audit:read")
    assert reader.post("/v1/audit/checkpoints").status_code == 403
    assert reader.get("/v1/audit/checkpoints").status_code == 200
    assert make_api("audit:write").post("/v1/audit/checkpoints").status_code == 201


def test_a_version_published_only_in_italian_leaves_the_english_text(clean_db: Engine) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with Session(clean_db) as session:
        publish(session, NOTICE, start)
        italian = NOTICE | {"version": "2030-02", "locale": "it", "text": "Offerte."}
        publish(session, italian, start + timedelta(days=1))
        assert notices.current(session, "marketing-consent", "en").version == "2030-01"
        assert notices.current(session, "marketing-consent", "it").version == "2030-02"
        assert notices.current(session, "marketing-consent", "de").version == "2030-01"


def test_a_keys_versions_are_listed_per_locale(api: ApiClient, clean_db: Engine) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with Session(clean_db) as session:
        for day, (version, locale) in enumerate(
            [("1", "en"), ("1", "it"), ("2", "en"), ("3", "it")]
        ):
            publish(
                session,
                NOTICE | {"version": version, "locale": locale},
                start + timedelta(days=day),
            )
    listed = [(n["locale"], n["version"]) for n in api.get("/v1/notices").get_json()["notices"]]
    assert listed == [("en", "1"), ("en", "2"), ("it", "1"), ("it", "3")]
