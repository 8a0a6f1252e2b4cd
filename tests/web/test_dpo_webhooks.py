"""The DPO page names every webhook receiver that was switched off, and why."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from app.models import Webhook, utcnow
from app.services.delivery import webhooks
from tests.conftest import ApiClient
from tests.web.test_dpo_pages import sign_in_dpo


def test_a_disabled_receiver_is_a_line_on_the_dpo_page(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine
) -> None:
    with Session(clean_db) as session:
        made = webhooks.register(
            session,
            "https://crm.example.org/in",
            ["consent.changed"],
            actor="t",
            allow_private=False,
        )
        session.execute(
            update(Webhook)
            .where(Webhook.id == made.webhook.id)
            .values(
                disabled_at=utcnow(), disabled_reason="delivery msg_1 failed 11 times: HTTP 500"
            )
        )
        session.commit()
    sign_in_dpo(client, make_api)
    page = client.get("/dpo").get_data(as_text=True)
    assert "Webhook receivers switched off" in page
    assert "https://crm.example.org/in" in page
    assert "failed 11 times: HTTP 500" in page
