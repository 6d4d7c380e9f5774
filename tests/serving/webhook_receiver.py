"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request and
answers 500 to the first ``fail_first`` attempts of each Idempotency-Key."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    key: str
    attempt: str
    signature: str
    body: bytes
    status: int


@dataclass
class Receiver:
    fail_first: int = 1
    always_fail: bool = False
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.status == 200]

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Idempotency-Key", "")
                with outer.lock:
                    seen = sum(1 for r in outer.got if r.key == key)
                    status = 500 if outer.always_fail or seen < outer.fail_first else 200
                    outer.got.append(
                        Received(
                            key,
                            self.headers.get("X-NBA-Attempt", ""),
                            self.headers.get("X-NBA-Signature", ""),
                            body,
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
