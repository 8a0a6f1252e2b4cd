"""/openapi.json and /docs: public, the committed description, assets from the package."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
import yaml
from flask.testing import FlaskClient

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"


def test_openapi_json_is_the_committed_description_and_needs_no_token(
    client: FlaskClient,
) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def test_docs_page_loads_only_its_own_assets_under_a_policy_without_unsafe_inline(
    client: FlaskClient,
) -> None:
    response = client.get("/docs")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "//" not in html.replace("http://www.w3.org", "")  # no CDN, no other origin
    assert "<script>" not in html
    assert "style=" not in html
    assert 'src="/docs/assets/ui.js"' in html
    assert 'src="/static/api_docs.js"' in html
    assert 'data-url="/openapi.json"' in html


def test_docs_assets_are_the_swagger_ui_bundle_packages_files(client: FlaskClient) -> None:
    for name, packaged in (("ui.js", "swagger-ui-bundle.js"), ("ui.css", "swagger-ui.css")):
        response = client.get(f"/docs/assets/{name}")

        assert response.status_code == 200
        assert response.data == (swagger_ui_bundle.swagger_ui_path / packaged).read_bytes()
        assert "max-age=86400" in response.headers["Cache-Control"]


def test_docs_serve_no_other_file_of_the_package(client: FlaskClient) -> None:
    for name in ("index.html", "swagger-ui-bundle.js", "..%2F__init__.py", "oauth2-redirect.html"):
        assert client.get(f"/docs/assets/{name}").status_code == 404
