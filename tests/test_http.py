"""app/http.py: json_response answers what the app's JSON provider would, byte for byte."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response

from app.http import json_response


def test_json_response_is_the_providers_bytes(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    data = {
        "results": [
            {"email": f"user{i}@example.org", "allowed": i % 2 == 0, "reason": "granted"}
            for i in range(50)
        ],
        "denied": 25,
        "allowed": 25,
        "read_from": "replica",
    }
    with app.test_request_context():
        fast, usual = json_response(data), app.json.response(data)
    assert isinstance(usual, Response)
    assert fast.get_data() == usual.get_data()
    assert fast.mimetype == usual.mimetype == "application/json"
