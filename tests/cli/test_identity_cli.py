"""`consent-center import`, `repermission`, `identifiers` and `subjects merge` from the shell."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.models import ConsentEvent, OutboxMessage, Subject
from tests.conftest import ApiClient
from tests.smtp import confirm_link

ROW = {
    "channel": "email",
    "category": "newsletter",
    "status": "granted",
    "consented_at": "2020-05-01T08:00:00+02:00",
    "source": "trade-fair",
}


def write(path: Path, *emails: str, method: str = "single_opt_in") -> Path:
    path.write_text(
        "".join(json.dumps(ROW | {"email": e, "method": method}) + "\n" for e in emails)
    )
    return path


def last_json(result: Result) -> dict:  # type: ignore[type-arg]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_reports_progress_and_a_dry_run_changes_nothing(
    cli: Callable[..., Result], tmp_path: Path, clean_db: Engine
) -> None:
    path = write(tmp_path / "list.ndjson", "a@example.org", "b@example.org")
    dry = cli("import", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (last_json(dry)["dry_run"], last_json(dry)["applied"]) == (True, 2)
    with Session(clean_db) as session:
        assert session.scalar(select(func.count()).select_from(Subject)) == 0
    done = cli("import", str(path))
    assert done.exit_code == 0, done.output
    assert "importing" in done.stderr
    assert (last_json(done)["state"], last_json(done)["applied"]) == ("done", 2)
    again = cli("import", str(path))
    assert (last_json(again)["applied"], last_json(again)["unchanged"]) == (0, 2)


def test_csv_by_its_name_and_per_line_errors(cli: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "email,channel,category,status,method\n"
        "a@example.org,email,newsletter,granted,double_opt_in\n"
        "a@example.org,email,newsletter,sure,double_opt_in\n"
    )
    result = cli("import", str(path))
    body = last_json(result)
    assert (body["applied"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["line"] == 3


def test_repermission_mails_at_the_rate_set_and_never_twice_in_the_window(
    cli: Callable[..., Result], tmp_path: Path, clean_db: Engine
) -> None:
    path = write(tmp_path / "list.ndjson", "a@example.org", "b@example.org", "c@example.org")
    cli("import", str(write(tmp_path / "proven.ndjson", "d@example.org", method="double_opt_in")))
    cli("import", str(path))
    first = cli("repermission", "--per-minute", "2", "--once")
    assert first.exit_code == 0, first.output
    assert last_json(first) == {"mailed": 2, "remaining": True}
    second = cli("repermission", "--per-minute", "2", "--once")
    assert last_json(second) == {"mailed": 1, "remaining": False}
    assert last_json(cli("repermission", "--once")) == {"mailed": 0, "remaining": False}
    with Session(clean_db) as session:
        mailed = sorted(str(a) for a in session.scalars(select(OutboxMessage.to_address)))
        logged = session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.action == "repermission_requested")
        )
    assert mailed == ["a@example.org", "b@example.org", "c@example.org"]
    assert logged == 3


def test_link_list_merge_and_unlink_from_the_command_line(
    cli: Callable[..., Result], tmp_path: Path, clean_db: Engine
) -> None:
    cli("import", str(write(tmp_path / "l.ndjson", "a@example.org", "b@example.org")))
    with Session(clean_db) as session:
        first, second = sorted(session.scalars(select(Subject.id)))
    linked = cli("identifiers", "link", first, "external_id", "crm-1", "--source", "crm")
    assert json.loads(linked.stdout)["source"] == "crm"
    merged = cli("subjects", "merge", first, second)
    assert json.loads(merged.stdout)["identifiers_moved"] == 1
    held = json.loads(cli("identifiers", "list", second).stdout)["identifiers"]
    assert len(held) == 3
    gone = next(i for i in held if i["kind"] == "external_id")
    assert cli("identifiers", "unlink", first, gone["id"]).exit_code == 0
    assert len(json.loads(cli("identifiers", "list", first).stdout)["identifiers"]) == 2
    assert cli("audit", "verify").exit_code == 0


def test_a_repermission_mails_link_confirms_the_address_and_no_one_is_mailed_twice(
    cli: Callable[..., Result],
    tmp_path: Path,
    clean_db: Engine,
    client: FlaskClient,
    api: ApiClient,
) -> None:
    """Issue 14: the link a re-permission mail carries, followed, grants that address; a
    second run within the confirmation window mails neither the confirmed address nor the
    one still unconfirmed."""
    cli("import", str(write(tmp_path / "fair.ndjson", "a@example.org", "b@example.org")))
    assert reason(api, "a@example.org") == "pending_confirmation"
    assert last_json(cli("repermission", "--once")) == {"mailed": 2, "remaining": False}
    with Session(clean_db) as session:
        mail = session.scalars(
            select(OutboxMessage).where(OutboxMessage.to_address == "a@example.org")
        ).one()
    link = confirm_link(mail.body_text or "")
    path = "/confirm/" + link.rpartition("/confirm/")[2]
    page = client.get(path).get_data(as_text=True)
    token = CSRF.search(page)
    assert token is not None, page
    confirmed = client.post(path, data={"csrf_token": token.group(1)})
    assert confirmed.status_code in (200, 303), confirmed.get_data(as_text=True)
    assert reason(api, "a@example.org") == "granted"
    assert reason(api, "b@example.org") == "pending_confirmation"
    assert last_json(cli("repermission", "--once")) == {"mailed": 0, "remaining": False}
    with Session(clean_db) as session:
        mailed = sorted(str(a) for a in session.scalars(select(OutboxMessage.to_address)))
    assert mailed == ["a@example.org", "b@example.org"]


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def reason(api: ApiClient, email: str) -> str:
    answer = api.get(f"/v1/consent/check?email={email}&channel=email&category=newsletter")
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["reason"])
