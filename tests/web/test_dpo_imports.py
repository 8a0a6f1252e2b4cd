"""The DPO page lists the imports, and each import's refused lines on a page of its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.services.imports import jobs
from tests.api.identity_helpers import run_imports, upload
from tests.api.test_imports_api import row
from tests.conftest import ApiClient
from tests.web.test_dpo_pages import sign_in


def test_the_imports_are_listed_with_their_counts_and_a_link_to_their_errors(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    crm = make_api("consent:write")
    body = json.dumps(row()) + "\n" + '{"email": "bob@example.org"}\n' + json.dumps(row()) + "\n"
    import_id = upload(crm, body)
    dry_id = upload(crm, json.dumps(row() | {"email": "eve@example.org"}) + "\n", dry_run=True)
    run_imports(clean_db, rules)
    queued_id = upload(crm, json.dumps(row()) + "\n")

    dpo = make_api("audit:read")
    assert client.get(f"/dpo/imports/{import_id}").status_code == 302  # signed out: to login
    sign_in(client, dpo.client_id, dpo.client_secret)
    page = client.get("/dpo").get_data(as_text=True)
    table = page[
        page.index('id="imports-log"') : page.index("</table>", page.index('id="imports-log"'))
    ]
    assert "<caption>Imports: 3</caption>" in table
    assert table.count(f"client:{crm.client_id}") == 3
    assert table.index("queued") < table.index("dry run") < table.index(f"/dpo/imports/{import_id}")
    assert f"/dpo/imports/{dry_id}" not in table  # nothing refused: no errors page to open
    assert f"/dpo/imports/{queued_id}" not in table
    first = table[table.rindex("<tr") :]
    cells = [c.split(">", 1)[1] for c in first.split("</td>")[:-1]]
    assert [c for c in cells if c.isdigit()] == ["3", "1", "1"]  # read, applied, unchanged

    errors = client.get(f"/dpo/imports/{import_id}")
    assert errors.status_code == 200
    text = errors.get_data(as_text=True)
    assert "<caption>Refused lines: 1</caption>" in text
    assert '<tr><th scope="row">2</th>' in text
    assert '<html lang="en">' in text


def test_an_unknown_or_malformed_import_is_a_readable_404(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    sign_in(client, dpo.client_id, dpo.client_secret)
    missing = client.get(f"/dpo/imports/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.mimetype == "text/html"
    assert client.get("/dpo/imports/not-an-id").status_code == 404


def test_with_no_import_the_page_says_so(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    sign_in(client, dpo.client_id, dpo.client_secret)
    assert "No import yet." in client.get("/dpo").get_data(as_text=True)


def test_a_running_import_says_how_far_it_has_come(
    client: FlaskClient,
    make_api: Callable[..., ApiClient],
    clean_db: Engine,
    rules: Rules,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_LINES", 1)
    lines = [json.dumps(row(email=f"p{n}@example.org")) for n in range(3)]
    with Session(clean_db) as session:
        job = jobs.create(session, lines, jobs.Format.NDJSON, actor="client:crm")
        jobs.apply_next_chunk(session, rules, job.id)
    dpo = make_api("audit:read")
    sign_in(client, dpo.client_id, dpo.client_secret)
    page = client.get("/dpo").get_data(as_text=True)
    assert "running (1 of 3 parts)" in page
