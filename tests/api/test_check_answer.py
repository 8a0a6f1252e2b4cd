"""The check's arguments and answer, built without marshmallow's machinery on the hot path,
are what the schemas that document them load and dump (app/api/schemas.py)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError, fields

from app.api import fastcheck
from app.api.consent import answer_body
from app.api.schemas import CheckQuerySchema, CheckResultSchema
from app.domain.consent import Decision
from app.domain.vocabulary import Reason
from app.services.consent.checks import Answer

EMAILS = st.from_regex(r"[a-zA-Z0-9.+_-]{1,10}@[a-z0-9-]{1,10}\.[a-z]{1,4}", fullmatch=True)
IDS = st.one_of(st.none(), st.uuids().map(str))
SOURCES = st.sampled_from([{}, {"read_from": "replica"}])


@given(
    allowed=st.booleans(),
    reason=st.sampled_from(list(Reason)),
    subject_id=IDS,
    event_id=IDS,
    contact=st.one_of(st.none(), EMAILS),
    is_for_person=st.booleans(),
    source=SOURCES,
)
def test_the_answer_is_what_its_schema_dumps(
    allowed: bool,
    reason: Reason,
    subject_id: str | None,
    event_id: str | None,
    contact: str | None,
    is_for_person: bool,
    source: dict[str, str],
) -> None:
    answer = Answer(Decision(allowed, reason, event_id), subject_id, contact, is_for_person)
    given_body: dict[str, Any] = {
        "allowed": allowed,
        "reason": reason,
        "subject_id": subject_id,
        "event_id": event_id,
        **source,
    }
    if is_for_person:
        given_body["contact"] = contact
    body = answer_body(answer, source)
    assert body == CheckResultSchema().dump(given_body)
    assert list(body) == [name for name in CheckResultSchema().fields if name in body]
    assert type(body["reason"]) is str


VALUES = st.one_of(
    st.text(max_size=12),
    EMAILS,
    st.uuids().map(str),
    st.sampled_from(["email", "sms", "newsletter", "personalization", " a@b.example ", "x" * 300]),
)


@given(given_args=st.dictionaries(st.sampled_from(sorted(fastcheck.KNOWN)), VALUES, max_size=4))
def test_the_arguments_load_as_the_schema_loads_them(given_args: dict[str, str]) -> None:
    def outcome(load: Any) -> Any:
        try:
            return load(given_args)
        except ValidationError:
            return ValidationError

    assert fastcheck._PLAIN
    assert outcome(fastcheck.load) == outcome(CheckQuerySchema().load)


@pytest.mark.parametrize(
    "field",
    [
        fields.String(required=True),
        fields.String(load_default="x"),
        fields.String(data_key="other"),
        fields.String(attribute="other"),
    ],
)
def test_a_schema_that_is_not_plain_is_loaded_by_marshmallow(field: fields.Field[Any]) -> None:
    schema = CheckQuerySchema.from_dict({"more": field})()
    assert not fastcheck._is_plain(schema)


def test_a_hook_makes_a_schema_not_plain() -> None:
    from marshmallow import post_load

    class Hooked(CheckQuerySchema):
        @post_load
        def changed(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            return data

    assert fastcheck._is_plain(CheckQuerySchema())
    assert not fastcheck._is_plain(Hooked())


def test_a_subject_id_loads_as_a_uuid_on_both() -> None:
    value = str(uuid.uuid4())
    args = {"subject_id": value, "purpose": "personalization"}
    assert (
        fastcheck.load(args)
        == CheckQuerySchema().load(args)
        == {
            "subject_id": uuid.UUID(value),
            "purpose": "personalization",
        }
    )


def _parsed_as_parse_qsl(query: str) -> dict[str, str] | None:
    """The fast check's reading of a query, as it was first written: with `parse_qsl`."""
    try:
        text = query.encode("latin-1").decode()
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeError:
        return None
    args = dict(pairs)
    if len(args) != len(pairs) or not fastcheck.KNOWN.issuperset(args):
        return None
    if any(not value or "\x00" in value for value in args.values()):
        return None
    return args


PIECES = st.sampled_from(
    [
        *sorted(fastcheck.KNOWN),
        "=",
        "&",
        "&&",
        "+",
        "%40",
        "%00",
        "%C3%A9",
        "%E9",
        "%",
        "%4",
        "a@b.example",
        "x",
        "é",
        "other",
    ]
)


@given(st.lists(PIECES, max_size=12).map("".join))
def test_the_query_is_read_as_parse_qsl_reads_it(query: str) -> None:
    assert fastcheck._arguments(query) == _parsed_as_parse_qsl(query)


def test_a_common_query_is_read() -> None:
    query = "email=ada%40example.org&channel=email&category=newsletter"
    assert fastcheck._arguments(query) == {
        "email": "ada@example.org",
        "channel": "email",
        "category": "newsletter",
    }
    assert fastcheck._arguments(query + "&email=b%40example.org") is None
