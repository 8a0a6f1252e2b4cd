"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that verifies what it gets.

Its behaviour is a script of answers (a status, or "timeout" to stay silent past the sender's
timeout); once the script runs out it answers 200. It records every request as received and
verifies each Standard Webhooks signature with the receiver's secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    verified: bool
    answered: int | str


@dataclass
class Receiver:
    url: str
    secret: str = ""
    script: list[int | str] = field(default_factory=list)
    hang_seconds: float = 3.0
    pause_seconds: float = 0.0  # think this long before every answer
    drop_kept_alive: bool = False  # close each connection after answering, without saying so
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self) -> int | str:
        with self.lock:
            return self.script.pop(0) if self.script else 200

    def record(self, raw: bytes, headers: dict[str, str], answered: int | str) -> None:
        verified = False
        if self.secret:
            try:
                Verifier(self.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self.lock:
            self.received.append(
                Received(
                    headers.get("webhook-id", ""), json.loads(raw), headers, verified, answered
                )
            )

    @property
    def delivered(self) -> list[Received]:
        """What was answered 2xx, in the order it arrived."""
        return [r for r in self.received if isinstance(r.answered, int) and r.answered < 300]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = receiver.answer_next()
            if receiver.pause_seconds:
                time.sleep(receiver.pause_seconds)
            receiver.record(raw, headers, answer)
            if answer == "timeout":
                time.sleep(receiver.hang_seconds)
                self.close_connection = True
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            if receiver.drop_kept_alive:
                self.close_connection = True  # as an idle timeout would, unannounced

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(host: str = "127.0.0.1") -> Iterator[Receiver]:
    server = ThreadingHTTPServer((host, 0), _handler(Receiver(url="")))
    receiver = Receiver(url=f"http://{host}:{server.server_address[1]}/hooks")
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
