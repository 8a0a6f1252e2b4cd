"""The privacy center's use cases with an explicit clock: links, sessions, erasure, requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.errors import ExpiredTokenError, InvalidTokenError, UsedTokenError
from app.domain.inventory import Inventory, load_inventory
from app.domain.rules import Rules
from app.models import AccessLog, AccessSession, OutboxMessage, RightsRequest, UsedToken
from app.services.delivery.mail import MailTemplates
from app.services.privacy_center import access, download, erasure, overview, rights
from app.services.tokens import Purpose, Tokens
from tests.factories import make_subscriber
from tests.transactions import counting_commits
from tests.wire import offset_times

ROOT = Path(__file__).parent.parent.parent
IDLE = timedelta(minutes=15)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
VISIT = access.PrivacyVisit("203.0.113.9", "pytest-browser")


@pytest.fixture
def signer() -> Tokens:
    ttl = {purpose: timedelta(days=90) for purpose in Purpose}
    return Tokens("secret", ttl | {Purpose.ACCESS: timedelta(minutes=30)})


@pytest.fixture
def templates() -> MailTemplates:
    return MailTemplates(ROOT / "templates" / "mail")


@pytest.fixture
def inventory() -> Inventory:
    return load_inventory(Settings.__dataclass_fields__["inventory_path"].default)  # type: ignore[arg-type]


@pytest.fixture
def opened(
    session: Session, rules: Rules, signer: Tokens, templates: MailTemplates
) -> access.OpenedSession:
    """A subscriber who asked for access and opened the mailed link at T0."""
    return open_access(session, rules, signer, templates)


def open_access(
    session: Session,
    rules: Rules,
    signer: Tokens,
    templates: MailTemplates,
    email: str = "ada@example.org",
) -> access.OpenedSession:
    subject_id = make_subscriber(session, rules, email=email)
    ask(session, signer, templates, subject_id)
    return access.open_session(session, signer, mailed_token(session), VISIT, idle=IDLE, now=T0)


def ask(session: Session, signer: Tokens, templates: MailTemplates, subject_id: str) -> bool:
    return access.request_access(
        session,
        signer,
        templates,
        signer.make(Purpose.PREFERENCES, {"s": subject_id}),
        base_url="https://cc.example",
        mail_from="cc@example.org",
        locale="en",
        now=T0,
    ).is_mailed


def within(opened: access.OpenedSession) -> access.SessionVisit:
    return access.SessionVisit(opened.session_id, VISIT, IDLE)


def mailed_token(session: Session) -> str:
    body = session.scalars(select(OutboxMessage.body_text)).one() or ""
    return body.split("https://cc.example/access/")[1].split()[0]


def test_an_access_link_goes_only_to_the_subjects_own_address_at_most_every_few_minutes(
    session: Session, rules: Rules, signer: Tokens, templates: MailTemplates
) -> None:
    subject_id = make_subscriber(session, rules, email="ada@example.org")
    assert ask(session, signer, templates, subject_id) is True
    assert ask(session, signer, templates, subject_id) is False
    (message,) = session.scalars(select(OutboxMessage)).all()
    assert (message.to_address, message.template) == ("ada@example.org", access.ACCESS_MAIL)
    assert "30 minutes" in (message.body_text or "")


def test_an_access_link_opens_one_session_once_and_stores_only_the_session_ids_hash(
    session: Session, rules: Rules, signer: Tokens, templates: MailTemplates
) -> None:
    subject_id = make_subscriber(session, rules)
    ask(session, signer, templates, subject_id)
    token = mailed_token(session)
    access.check_access_link(session, signer, token)
    opened = access.open_session(session, signer, token, VISIT, idle=IDLE, now=T0)
    row = session.scalars(select(AccessSession)).one()
    assert row.id_hash != opened.session_id
    assert opened.session_id not in row.id_hash
    assert session.scalars(select(UsedToken.purpose)).all() == ["access"]
    with pytest.raises(UsedTokenError):
        access.check_access_link(session, signer, token)
    with pytest.raises(UsedTokenError):
        access.open_session(session, signer, token, VISIT, idle=IDLE, now=T0)


def test_a_forged_or_expired_access_link_opens_nothing(
    session: Session, rules: Rules, signer: Tokens
) -> None:
    subject_id = make_subscriber(session, rules)
    with pytest.raises(InvalidTokenError):
        access.open_session(session, signer, "forged.token.value", VISIT, idle=IDLE)
    preference = signer.make(Purpose.PREFERENCES, {"s": subject_id})
    with pytest.raises(InvalidTokenError):
        access.open_session(session, signer, preference, VISIT, idle=IDLE)
    stale = Tokens("secret", {Purpose.ACCESS: timedelta(seconds=-1)})
    expired = stale.make(Purpose.ACCESS, {"s": subject_id, "n": "x"})
    with pytest.raises(ExpiredTokenError):
        access.open_session(session, stale, expired, VISIT, idle=IDLE)
    assert session.scalars(select(AccessSession)).all() == []


def test_the_session_ends_after_the_idle_timeout_and_each_use_extends_it(
    session: Session, rules: Rules, inventory: Inventory, opened: access.OpenedSession
) -> None:
    subject_id = opened.subject_id

    def look(at: datetime) -> overview.PrivacyOverview:
        return overview.overview(session, rules, inventory, within(opened), now=at)

    assert look(T0 + timedelta(minutes=14)).subject.id == subject_id
    assert look(T0 + timedelta(minutes=28)).subject.id == subject_id
    with pytest.raises(access.AccessSessionError):
        look(T0 + timedelta(minutes=28) + IDLE)
    assert session.scalars(select(AccessSession)).all() == []
    with pytest.raises(access.AccessSessionError):
        look(T0)


def test_every_opening_is_logged_and_access_and_download_are_answered_requests(
    session: Session, rules: Rules, inventory: Inventory, opened: access.OpenedSession
) -> None:
    overview.overview(session, rules, inventory, within(opened), now=T0)
    data = download.download(session, rules, inventory, within(opened), locale="de", now=T0)
    pages = session.scalars(select(AccessLog.page).order_by(AccessLog.id)).all()
    assert pages == ["access_link", "privacy", "download"]
    assert {(r["page"], r["ip"]) for r in data["access_log"]} >= {("privacy", "203.0.113.9")}
    requests = session.scalars(select(RightsRequest).order_by(RightsRequest.kind)).all()
    assert [(r.kind, r.received_at, r.answered_at) for r in requests] == [
        ("access", T0, T0),
        ("download", T0, T0),
    ]
    assert requests[0].due_at == datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    assert data["inventory"][0]["label"] == "E-Mail-Adresse"


def test_erasure_queues_a_final_mail_that_outlives_the_erasure_and_ends_the_session(
    session: Session,
    rules: Rules,
    signer: Tokens,
    templates: MailTemplates,
    inventory: Inventory,
) -> None:
    opened = open_access(session, rules, signer, templates, email="grace@example.org")
    report = erasure.erase(
        session,
        rules,
        inventory,
        templates,
        within(opened),
        proof_retention=timedelta(days=3 * 365),
        mail_from="cc@example.org",
        locale="it",
        now=T0,
    )
    assert [k.item.key for k in report.kept] == ["suppression_entry", "pseudonymous_proof"]
    assert report.kept[1].until == T0 + timedelta(days=3 * 365)
    (final,) = session.scalars(select(OutboxMessage)).all()
    assert (final.template, final.to_address, final.subject_id, final.locale) == (
        erasure.FINAL_MAIL,
        "grace@example.org",
        None,
        "it",
    )
    assert "2029-11-19" in (final.body_text or "")
    assert session.scalars(select(AccessSession)).all() == []
    assert session.scalars(select(RightsRequest.kind).order_by(RightsRequest.kind)).all() == [
        "access",
        "erasure",
    ]
    with pytest.raises(access.AccessSessionError):
        overview.overview(session, rules, inventory, within(opened), now=T0)


def test_the_download_writes_every_time_in_utc_with_z(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    opened: access.OpenedSession,
) -> None:
    data = download.download(session, rules, inventory, within(opened), locale="en", now=T0)
    text = download.dumps(data)
    assert offset_times(text) == []
    assert data["generated_at"] == "2026-11-20T09:00:00.000000Z"


def test_a_self_service_erasure_is_one_transaction_logged_once_as_from_the_web(
    session: Session,
    rules: Rules,
    templates: MailTemplates,
    inventory: Inventory,
    opened: access.OpenedSession,
) -> None:
    with counting_commits(session) as commits:
        erasure.erase(
            session,
            rules,
            inventory,
            templates,
            within(opened),
            proof_retention=timedelta(days=30),
            mail_from="cc@example.org",
            locale=None,
            now=T0,
        )
    assert len(commits) == 1
    requests = session.execute(
        select(RightsRequest.kind, RightsRequest.channel).order_by(RightsRequest.kind)
    ).all()
    assert [tuple(r) for r in requests] == [("access", "web"), ("erasure", "web")]


def test_an_idle_session_fails_the_use_case_and_ending_it_removes_it(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    opened: access.OpenedSession,
) -> None:
    later = T0 + IDLE + timedelta(seconds=1)
    with counting_commits(session) as commits, pytest.raises(access.AccessSessionError):
        overview.overview(session, rules, inventory, within(opened), now=later)
    assert commits == []
    session.rollback()
    access.end_session(session, opened.session_id)
    with Session(session.get_bind()) as fresh:
        assert fresh.scalars(select(AccessSession)).all() == []


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 1, 31, 12, tzinfo=UTC), datetime(2026, 2, 28, 12, tzinfo=UTC)),
        (datetime(2028, 1, 31, 12, tzinfo=UTC), datetime(2028, 2, 29, 12, tzinfo=UTC)),
        (datetime(2026, 12, 15, 8, tzinfo=UTC), datetime(2027, 1, 15, 8, tzinfo=UTC)),
    ],
)
def test_a_rights_request_is_due_one_calendar_month_after_it_came_in(
    session: Session, received: datetime, due: datetime
) -> None:
    request = rights.add(session, "subject-1", "erasure", received_at=received)
    session.commit()
    assert (request.due_at, request.answered_at) == (due, None)


@pytest.mark.parametrize("name", [access.ACCESS_MAIL, erasure.FINAL_MAIL])
def test_both_mails_exist_in_four_languages(templates: MailTemplates, name: str) -> None:
    context = {
        "url": "https://cc.example/access/x",
        "minutes": 30,
        "erased_at": T0,
        "kept": [{"label": "L", "purpose": "P", "retention": "R", "until": "2029-11-19"}],
    }
    rendered = [templates.render(name, locale, context) for locale in ("en", "es", "it", "de")]
    assert [r.locale for r in rendered] == ["en", "es", "it", "de"]
    assert len({r.subject for r in rendered}) == 4
    assert all(r.html for r in rendered)
