"""A registry that only checks credentials: records every request's path and Authorization
header (one JSON line each), asks for Basic auth on /v2/, and knows no image.

Usage: python fake_registry.py PORT RECORD_FILE  (writes RECORD_FILE.ready once listening)
"""

from __future__ import annotations

import http.server
import json
import sys
from pathlib import Path


def main() -> None:
    port, record = int(sys.argv[1]), Path(sys.argv[2])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            authorization = self.headers.get("Authorization", "")
            with record.open("a") as out:
                out.write(json.dumps({"path": self.path, "authorization": authorization}) + "\n")
            if self.path.rstrip("/") == "/v2" and not authorization:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="flotta-test"')
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"login"}]}'
            elif self.path.rstrip("/") == "/v2":
                self.send_response(200)
                body = b"{}"
            else:
                self.send_response(404)
                body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such image"}]}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    Path(f"{record}.ready").touch()
    server.serve_forever()


if __name__ == "__main__":
    main()
