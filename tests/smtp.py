"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) and what the tests read from its mail."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, TypeVar

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://\S+/confirm/[A-Za-z0-9_.\-]+")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """The aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


Handler = TypeVar("Handler", bound=Inbox)


@contextmanager
def smtp_server(inbox: Handler, port: int | None = None) -> Iterator[tuple[Handler, int]]:
    """A real SMTP server on 127.0.0.1 (a free port unless named) for the block, and its port."""
    port = port or free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def confirm_link(body: str) -> str:
    found = LINK.search(body)
    assert found is not None, body
    return found.group(0)
