"""A small HTTP/2 cleartext (h2c, prior knowledge) client for the e2e tests, on the `h2` library.

One connection per `H2Client`; `request()` sends the HEADERS frame and then the body as DATA
frames of `frame_size` bytes (optionally pausing between frames), honouring flow control and
stopping early if Envoy has already answered or reset the stream. `reset_after` sends that many
body bytes and then RST_STREAM(CANCEL) instead of ending the stream. Every socket operation has a
timeout; nothing here retries.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

IO_TIMEOUT = 5.0


@dataclass
class H2Response:
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    reset: int | None = None  # RST_STREAM error code from Envoy, if the stream was reset
    goaway: int | None = None  # GOAWAY error code, if Envoy sent one
    closed: bool = False  # the connection ended (GOAWAY or TCP close) before the stream did
    raw: bytes = field(repr=False, default=b"")  # headers + body, for "nothing leaks" checks

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self):
        return json.loads(self.body)


class _Stream:
    def __init__(self):
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.ended = False
        self.reset: int | None = None


class H2Client:
    def __init__(self, port: int, timeout: float = IO_TIMEOUT, *, validate: bool = True):
        """validate=False lets the client send headers HTTP/2 forbids (e.g. transfer-encoding)."""
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        cfg = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.streams: dict[int, _Stream] = {}
        self.terminated = False
        self.goaway: int | None = None
        self._flush()

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self._flush()
        except Exception:  # noqa: BLE001 - best effort on a possibly dead connection
            pass
        self.sock.close()

    def __enter__(self) -> "H2Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _pump(self, wait: float | None) -> bool:
        """Read what is available (blocking up to `wait` s; None: the I/O timeout) and handle
        the events. Returns False once the connection is closed."""
        readable, _, _ = select.select([self.sock], [], [], self.timeout if wait is None else wait)
        if not readable:
            return not self.terminated
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            data = b""
        if not data:
            self.terminated = True
            return False
        for ev in self.conn.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", 0) or 0)
            if isinstance(ev, h2.events.ResponseReceived) and st is not None:
                st.headers = [(k, v) for k, v in ev.headers]
                st.status = int(dict(st.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                if st is not None:
                    st.body += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st is not None:
                st.ended = True
            elif isinstance(ev, h2.events.StreamReset) and st is not None:
                st.reset = ev.error_code
                st.ended = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.terminated = True
                self.goaway = int(ev.error_code)
        self._flush()
        return not self.terminated

    # -- API --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        frame_size: int = 16384,
        pause: float = 0.0,
        pause_after_headers: float = 0.0,
        reset_after: int | None = None,
        content_length: bool = True,
    ) -> H2Response:
        sid = self.conn.get_next_available_stream_id()
        st = self.streams[sid] = _Stream()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", "lf-e2e.test"),
                (":path", path)]
        names = {k.lower() for k, _ in headers or []}
        if content_length and body and reset_after is None and "content-length" not in names:
            hdrs.append(("content-length", str(len(body))))
        hdrs += list(headers or [])
        end_now = not body and reset_after is None
        self.conn.send_headers(sid, hdrs, end_stream=end_now)
        self._flush()
        if pause_after_headers:
            self._pump(pause_after_headers)
        to_send = body if reset_after is None else body[:reset_after]
        pos = 0
        while pos < len(to_send) and not st.ended and not self.terminated:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self._pump(None)
                continue
            piece = to_send[pos : pos + min(frame_size, window)]
            pos += len(piece)
            last = pos >= len(to_send) and reset_after is None
            try:
                self.conn.send_data(sid, piece, end_stream=last)
                self._flush()
            except h2.exceptions.StreamClosedError:
                break
            except (BrokenPipeError, ConnectionResetError):
                self.terminated = True
                break
            # Notice an early answer or reset without blocking.
            self._pump(pause if pause else 0)
        if reset_after is not None and not st.ended and not self.terminated:
            self.conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
            self._flush()
            st.ended = True
            st.reset = int(h2.errors.ErrorCodes.CANCEL)
        deadline = time.monotonic() + self.timeout
        while not st.ended and not self.terminated and time.monotonic() < deadline:
            self._pump(max(0.0, deadline - time.monotonic()))
        raw = "".join(f"{k}: {v}\r\n" for k, v in st.headers).encode() + bytes(st.body)
        closed = self.terminated and not st.ended
        return H2Response(st.status, st.headers, bytes(st.body), st.reset, self.goaway, closed,
                          raw)
