"""The DPO page shows every webhook receiver's health: the unhealthy ones first, in words."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import Webhook, WebhookDelivery, utcnow
from app.services.delivery import webhooks
from tests.conftest import ApiClient
from tests.factories import make_subscriber
from tests.web.test_dpo_pages import sign_in


def _receivers_table(page: str) -> str:
    start = page.index('id="receivers"')
    return page[start : page.index("</table>", start)]


def test_a_disabled_receiver_is_listed_first_with_why_and_an_active_one_after(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        active = webhooks.register(
            session,
            "https://a-erp.example.org/in",
            ["consent.changed"],
            actor="t",
            allow_private=False,
        )
        off = webhooks.register(
            session,
            "https://crm.example.org/in?key=s3cret",
            ["consent.changed", "subject.erased"],
            actor="t",
            allow_private=False,
        )
        session.execute(
            update(Webhook)
            .where(Webhook.id == off.webhook.id)
            .values(
                disabled_at=utcnow(), disabled_reason="delivery msg_1 failed 11 times: HTTP 500"
            )
        )
        session.commit()
        make_subscriber(session, rules)  # one delivery waits for the active receiver
        active_id = active.webhook.id
    dpo = make_api("audit:read")
    sign_in(client, dpo.client_id, dpo.client_secret)
    page = client.get("/dpo").get_data(as_text=True)
    table = _receivers_table(page)
    assert "<caption>Receivers: 2</caption>" in table
    assert "1 of 2 need attention" in page
    assert table.index("crm.example.org") < table.index("a-erp.example.org")
    assert "<strong>disabled</strong>" in table
    assert "failed 11 times: HTTP 500" in table
    assert "consent.changed, subject.erased" in table
    assert "s3cret" not in page
    assert "/in" not in table
    assert "healthy" in table
    assert "none yet" in table

    # Twenty minutes without a delivery: the active receiver lags, and the page says so.
    with Session(clean_db) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == active_id)
            .values(created_at=utcnow() - timedelta(minutes=20))
        )
        session.commit()
    table = _receivers_table(client.get("/dpo").get_data(as_text=True))
    assert "<strong>lagging</strong>" in table
    assert "20 min" in table
    assert "2 of 2 need attention" in client.get("/dpo").get_data(as_text=True)


def test_with_no_receiver_the_page_says_so(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    sign_in(client, dpo.client_id, dpo.client_secret)
    assert "No webhook receiver is registered." in client.get("/dpo").get_data(as_text=True)
