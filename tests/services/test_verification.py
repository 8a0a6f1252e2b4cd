"""Live verification: each record the proof rests on, changed by hand, fails and is named."""

from __future__ import annotations

from joserfc.jwk import ECKey
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.domain import proof
from app.domain.rules import Rules
from app.models import ConsentEvent, ConsentState, Evidence, NoticeVersion
from app.services.audit import checkpoints, trail
from app.services.consent import notices, subjects
from tests.factories import change_newsletter, make_act, make_subscriber
from tests.forgeries import rewrite_from
from tests.web.pages import notices_path

KEY = ECKey.generate_key("P-256", auto_kid=True)
KEYS = proof.key_set(checkpoints.public_jwks(KEY))
VERSION = "2026-11-01"


def cited_subscriber(session: Session, rules: Rules, email: str = "ada@example.org") -> str:
    """A confirmed subscriber whose events cite the shipped consent notice."""
    notices.publish_file(session, notices_path())
    from app.domain.identifiers import identifier
    from app.domain.vocabulary import IdentifierKind
    from app.services.optin import confirmation, subscriptions

    requested = subscriptions.request(
        session,
        rules,
        subscriptions.OptIn(
            identifier(IdentifierKind.EMAIL, email), "email", ["newsletter", "offers"]
        ),
        make_act(notice_version=VERSION),
    )
    assert requested.request is not None
    confirmation.confirm_request(session, rules, requested.request.id, make_act(actor="subject"))
    return requested.subject_id


def test_an_untouched_trail_verifies_every_record(session: Session, rules: Rules) -> None:
    cited_subscriber(session, rules)
    checkpoints.create(session, KEY)
    result = trail.verify(session, keys=KEYS)
    assert result.is_ok, result.problem
    assert result.checked["notices"] >= 1
    assert result.checked["evidence"] >= 2
    assert result.checked["states"] == 3  # email, email/newsletter, email/offers
    assert result.checked["checkpoints"] == 1


def test_a_changed_notice_text_is_named(session: Session, rules: Rules) -> None:
    cited_subscriber(session, rules)
    session.execute(
        update(NoticeVersion)
        .where(NoticeVersion.version == VERSION, NoticeVersion.locale == "en")
        .values(text="We may sell your address.")
    )
    session.commit()
    result = trail.verify(session)
    assert not result.is_ok
    assert result.finding is not None
    assert result.finding.record == "notice"
    assert result.finding.notice == {
        "key": "marketing-consent",
        "version": VERSION,
        "locale": "en",
    }


def test_a_changed_notice_text_with_its_hash_recomputed_is_named_at_the_citing_event(
    session: Session, rules: Rules
) -> None:
    cited_subscriber(session, rules)
    forged = "We may sell your address."
    session.execute(
        update(NoticeVersion)
        .where(NoticeVersion.version == VERSION, NoticeVersion.locale == "en")
        .values(text=forged, sha256=notices.sha256(forged))
    )
    session.commit()
    result = trail.verify(session)
    assert not result.is_ok
    assert result.finding is not None
    assert result.finding.record == "notice"
    assert result.finding.notice is not None
    assert result.finding.notice["version"] == VERSION
    # Every English text of that version was forged: the first that published one is named.
    published = session.scalar(
        select(func.min(ConsentEvent.seq)).where(
            ConsentEvent.action == "notice_published",
            ConsentEvent.details.contains(f'"version":"{VERSION}"'),
            ConsentEvent.details.contains('"locale":"en"'),
        )
    )
    assert result.first_bad_seq == published


def test_a_changed_evidence_row_is_named(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules)
    named = session.scalars(select(ConsentEvent).where(ConsentEvent.evidence_hash.is_not(None)))
    first = next(iter(named))
    session.execute(
        update(Evidence).where(Evidence.hash == first.evidence_hash).values(ip="10.9.9.9")
    )
    session.commit()
    result = trail.verify(session)
    assert (result.is_ok, result.first_bad_seq) == (False, first.seq)
    assert result.finding is not None
    assert (result.finding.record, result.finding.evidence_hash) == (
        "evidence",
        first.evidence_hash,
    )


def test_a_withdrawn_choice_flipped_to_granted_in_the_current_state_is_named(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules)
    from app.domain.vocabulary import Status

    change_newsletter(session, rules, subject_id, Status.WITHDRAWN)
    grant = session.scalar(
        select(ConsentEvent).where(
            ConsentEvent.category == "newsletter", ConsentEvent.status == "granted"
        )
    )
    assert grant is not None
    session.execute(
        update(ConsentState)
        .where(ConsentState.subject_id == subject_id, ConsentState.category == "newsletter")
        .values(
            status="granted",
            event_seq=grant.seq,
            event_id=grant.id,
            occurred_at=grant.occurred_at,
        )
    )
    session.commit()
    result = trail.verify(session)
    assert not result.is_ok
    assert result.finding is not None
    assert result.finding.record == "state"
    assert result.finding.state == {
        "subject_id": subject_id,
        "channel": "email",
        "category": "newsletter",
        "purpose": "",
    }


def test_a_state_row_changed_in_place_or_deleted_is_named(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules)
    session.execute(
        update(ConsentState)
        .where(ConsentState.subject_id == subject_id, ConsentState.category == "newsletter")
        .values(status="withdrawn")
    )
    session.commit()
    changed = trail.verify(session)
    assert changed.finding is not None
    assert changed.finding.record == "state"
    session.execute(text("DELETE FROM consent_state WHERE category = 'newsletter'"))
    session.commit()
    deleted = trail.verify(session)
    assert deleted.finding is not None
    assert deleted.finding.record == "state"


def test_an_erasure_keeps_the_trail_verifiable(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules)
    subjects.erase(session, rules, subject_id, make_act(actor="admin"))
    assert trail.verify(session, keys=KEYS).is_ok


def test_a_rewritten_history_under_a_signed_checkpoint_is_caught_live(
    session: Session, rules: Rules
) -> None:
    make_subscriber(session, rules, categories=["newsletter", "offers"])
    checkpoints.create(session, KEY)
    make_subscriber(session, rules, email="bob@example.org")
    rewrite_from(session, 2, source="forged")
    assert trail.verify(session).is_ok  # every hash recomputed: only the signature knows
    result = trail.verify(session, keys=KEYS)
    checkpoint = session.scalar(select(ConsentEvent.seq).where(ConsentEvent.action == "checkpoint"))
    assert (result.is_ok, result.first_bad_seq) == (False, checkpoint)
    assert result.finding is not None
    assert result.finding.record == "checkpoint"
