"""app/http.py: json_response answers what the app's JSON provider would, byte for byte;
big_json what json.dumps spelt compact and unescaped, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask, Response

from app.http import big_json, json_response


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


def test_big_json_is_the_compact_unescaped_json_dumps_bytes(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    hostile = ['crm-"Zoë"\\ü', "\x00\x01\x1f\x7f", "\u2028\u2029", "日本語", "😀", "</script>"]
    page = {
        "changes": [
            {
                "cursor": str(2**62 - i),
                "occurred_at": "2026-03-01T12:00:00.000000Z",
                "subject_id": None if i % 3 else f"00000000-0000-4000-8000-{i:012x}",
                "identifiers": {"email": [f"user{i}@exämple.org"], "phone": [], "external_id": [t]},
                "channel": "email",
                "category": None,
                "purpose": None,
                "status": None if i % 2 else "granted",
                "action": "erased" if i % 5 == 0 else "grant",
            }
            for i, t in enumerate(hostile * 10)
        ],
        "next_after": "42",
    }
    with app.test_request_context():
        fast, usual = big_json(page), app.json.response(page)
    assert isinstance(usual, Response)
    assert fast.get_data() == json.dumps(page, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(fast.get_data()) == json.loads(usual.get_data()) == page
    assert fast.mimetype == "application/json"
