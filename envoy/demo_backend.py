#!/usr/bin/env python3
"""Demo backend for `make run`: prints every request it receives and answers 200.

Listens on 127.0.0.1:8080 (override with DEMO_BACKEND_HOST, e.g. 0.0.0.0 in a container, and
DEMO_BACKEND_PORT)."""
import http.server
import os
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        print(f"\n--- backend received: {self.command} {self.path}", flush=True)
        for name, value in self.headers.items():
            print(f"    {name}: {value}", flush=True)
        print(f"    body ({len(body)} bytes): {body.decode('utf-8', 'replace')}", flush=True)
        reply = b'{"backend":"ok"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_GET = do_PUT = do_DELETE = _handle

    def log_message(self, *args):  # the prints above are the log
        pass


def main():
    host = os.environ.get("DEMO_BACKEND_HOST", "127.0.0.1")
    port = int(os.environ.get("DEMO_BACKEND_PORT", "8080"))
    server = http.server.ThreadingHTTPServer((host, port), Handler)
    print(f"demo backend listening on {host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
