"""A tiny HTTP server on 127.0.0.1 (a thread) that records the requests it gets: the alerts'
webhook in tests. It answers 204, or a redirect to ``redirect_to`` when one is set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hook:
    url: str
    requests: list[dict] = field(default_factory=list)  # {"method", "path", "json"}
    redirect_to: str = ""

    def payloads(self) -> list[dict]:
        return [r["json"] for r in self.requests]


@contextmanager
def webhook_server() -> Iterator[Hook]:
    hook = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            hook.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "json": json.loads(body) if body else None,
                    "content_type": self.headers.get("Content-Type"),
                }
            )
            if hook.redirect_to:
                self.send_response(307)
                self.send_header("Location", hook.redirect_to)
            else:
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _answer
        do_GET = _answer

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/diffmig?token=abc"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
