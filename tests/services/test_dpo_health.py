"""The DPO page's read model of the imports and of the webhook receivers' health.

Real rows: imports uploaded and applied as the worker applies them, deliveries written by the
ledger and sent to real receivers on 127.0.0.1 (one answering 500, one silent past the sender's
timeout); a lagging receiver is one whose oldest waiting delivery is older than the threshold.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import ImportJob, Webhook, utcnow
from app.services.audit import dpo
from app.services.delivery import webhooks
from app.services.imports import jobs
from app.worker import run_import
from tests.api.test_imports_api import row
from tests.factories import make_subscriber
from tests.receiver import receiving

LEASE = timedelta(seconds=30)


def _import(session: Session, rules: Rules, lines: list[str], **kwargs: object) -> str:
    job = jobs.create(session, lines, jobs.Format.NDJSON, actor="client:crm", **kwargs)  # type: ignore[arg-type]
    run_import(session, rules, job.id)
    return job.id


def test_imports_are_listed_newest_first_with_their_counts_and_bounded(
    session: Session, rules: Rules
) -> None:
    first = _import(session, rules, [json.dumps(row()), "{not json", json.dumps(row())])
    dry = _import(
        session, rules, [json.dumps(row() | {"email": "bob@example.org"})], is_dry_run=True
    )
    queued = jobs.create(session, [json.dumps(row())], jobs.Format.NDJSON, actor="client:other")
    now = utcnow()
    for age, import_id in ((3, first), (2, dry), (1, queued.id)):
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == import_id)
            .values(created_at=now - timedelta(minutes=age))
        )
    session.commit()

    listed = dpo.imports(session)
    assert listed.total == 3
    assert [j.id for j in listed.jobs] == [queued.id, dry, first]
    newest, middle, oldest = listed.jobs
    assert (newest.state, newest.actor, newest.is_dry_run) == ("queued", "client:other", False)
    assert (middle.state, middle.is_dry_run, middle.rows, middle.applied) == ("done", True, 1, 1)
    assert (oldest.state, oldest.rows, oldest.applied, oldest.unchanged, oldest.rejected) == (
        "done",
        3,
        1,
        1,
        1,
    )

    bounded = dpo.imports(session, limit=2)
    assert (bounded.total, [j.id for j in bounded.jobs]) == (3, [queued.id, dry])


def _register(session: Session, url: str, events: list[str]) -> Webhook:
    made = webhooks.register(session, url, events, actor="tests", allow_private=True)
    return made.webhook


def test_receivers_health_puts_disabled_failing_and_lagging_first(
    session: Session, rules: Rules
) -> None:
    with receiving() as good, receiving() as bad, receiving() as slow:
        bad.script = [500] * 5
        slow.script = ["timeout"]
        slow.hang_seconds = 1.0
        good_id = _register(session, good.url, ["consent.changed"]).id
        bad_id = _register(session, bad.url + "/in?token=s3cret", ["consent.changed"]).id
        slow_id = _register(session, slow.url, ["consent.changed", "subject.erased"]).id
        off_id = _register(session, "https://crm.example.org/hook", ["subject.erased"]).id
        session.execute(
            update(Webhook)
            .where(Webhook.id == off_id)
            .values(
                disabled_at=utcnow(), disabled_reason="delivery msg_1 failed 11 times: HTTP 500"
            )
        )
        session.commit()
        make_subscriber(session, rules, email="one@example.org")
        sender = webhooks.Sender(allow_private=True, timeout=0.3)
        webhooks.deliver_due(session, sender, lease=LEASE)
        sender.close()

    now = utcnow()
    found = {r.webhook.id: r for r in dpo.receivers(session, now=now)}
    assert len(found) == 4
    healthy, failing, timed_out, off = (found[i] for i in (good_id, bad_id, slow_id, off_id))

    assert healthy.problems == []
    assert healthy.last is not None
    assert healthy.last.response_status == 200
    assert (healthy.pending, healthy.oldest_pending_age, healthy.failures) == (0, None, 0)

    assert failing.problems == ["failing"]
    assert failing.last is not None
    assert failing.last.last_error == "HTTP 500"
    assert failing.pending >= 1
    assert failing.failures >= 1
    assert failing.host == f"http://127.0.0.1:{urlsplit(bad.url).port}"
    assert "s3cret" not in failing.host

    assert timed_out.problems == ["failing"]
    assert timed_out.event_types == ["consent.changed", "subject.erased"]

    assert off.problems == ["disabled"]
    assert off.host == "https://crm.example.org"
    assert off.last is None
    assert off.pending == 0

    # Twenty minutes on, the changes still waiting for the failing receivers are late.
    later = dpo.receivers(session, now=now + timedelta(minutes=20))
    assert [r.webhook.id for r in later][:1] == [off_id]
    assert {r.webhook.id for r in later[1:3]} == {bad_id, slow_id}
    assert later[3].webhook.id == good_id
    assert later[3].problems == []
    lagging = next(r for r in later if r.webhook.id == bad_id)
    assert lagging.problems == ["failing", "lagging"]
    age = lagging.oldest_pending_age
    assert age is not None
    assert age >= timedelta(minutes=20)

    # A day on, the failures have left the 24-hour window.
    assert (
        next(
            r for r in dpo.receivers(session, now=now + timedelta(days=2)) if r.webhook.id == bad_id
        ).failures
        == 0
    )


def test_a_receiver_that_only_lags_is_marked_lagging(session: Session, rules: Rules) -> None:
    webhook = _register(session, "https://erp.example.org/in", ["consent.changed"])
    make_subscriber(session, rules, email="two@example.org")  # written, not yet sent
    now = utcnow()
    assert [r.problems for r in dpo.receivers(session, now=now)] == [[]]
    (late,) = dpo.receivers(session, now=now + timedelta(minutes=16))
    assert late.webhook.id == webhook.id
    assert late.problems == ["lagging"]
    assert late.pending >= 1
    assert late.last is None
    assert late.failures == 0
    assert (
        dpo.receivers(session, now=now + timedelta(minutes=16), lagging_after=timedelta(hours=1))[
            0
        ].problems
        == []
    )
