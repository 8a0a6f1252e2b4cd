"""The preference page shows every identifier held, whence and since when; the person can
remove one, and that is an event."""

from __future__ import annotations

from tests.conftest import ApiClient
from tests.web.pages import csrf_token


def test_the_page_lists_identifiers_and_removing_one_is_audited(api: ApiClient) -> None:
    created = api.post(
        "/v1/subscriptions",
        json={
            "email": "ada@example.org",
            "external_id": "crm-5",
            "categories": ["newsletter"],
            "source": "checkout",
        },
    ).get_json()
    subject_id = created["subject_id"]
    link = api.post(f"/v1/subjects/{subject_id}/links", json={}).get_json()["preference_url"]
    path = link.removeprefix("http://localhost:5000")
    html = api.http.get(path).get_data(as_text=True)
    assert "ada@example.org" in html
    assert "crm-5" in html
    assert "from checkout" in html
    identifiers = api.get(f"/v1/subjects/{subject_id}/identifiers").get_json()["identifiers"]
    crm = next(i for i in identifiers if i["kind"] == "external_id")
    response = api.http.post(
        f"{path}/identifiers/{crm['id']}/remove",
        data={"csrf_token": csrf_token(html), "locale": "en"},
    )
    assert response.status_code == 303
    after = api.http.get(response.headers["Location"]).get_data(as_text=True)
    assert "crm-5" not in after
    assert "We no longer hold it" in after
    events = api.get(f"/v1/audit/events?subject_id={subject_id}").get_json()["events"]
    unlink = events[-1]
    assert (unlink["action"], unlink["actor"], unlink["method"]) == (
        "identifier_unlinked",
        "subject",
        "preference_page",
    )
    again = api.http.post(
        f"{path}/identifiers/{crm['id']}/remove",
        data={"csrf_token": csrf_token(html), "locale": "en"},
    )
    assert again.status_code == 404
    assert "<html" in again.get_data(as_text=True)
