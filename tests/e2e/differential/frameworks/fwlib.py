"""Real web frameworks on loopback for tests/e2e/differential/test_frameworks.py, a recording
relay, a raw client.

Each framework runs with default options and a handler on /linksfield/sms ("md5") and
/cube/notify ("cube") that records every invocation with the request's `x-fw-seq` header
(`Framework.invocations()` -> {seq: route}). Everything is installed by setup.sh
(`make frameworks`); a missing piece raises FrameworkMissing with the command that installs it.
Every process is started by its own pid and stopped by it (`Framework.stop()`, with the
harness's `stop_process`; ports and temp dirs also come from lib/harness.py).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness import (REPO, accept_until, free_port, loopback_listener, remove_workdir,
                     stop_process)

HERE = Path(__file__).resolve().parent
VENV_BIN = REPO / ".venv" / "bin"
INSTALL_HINT = ("run `make frameworks` (tests/e2e/differential/frameworks/setup.sh; root, Debian: "
                "apt, npm, pip, cargo)")
TOMCAT_HOME = Path("/usr/share/tomcat10")
GO_BIN = REPO / "target" / "frameworks" / "goapp"
AXUM_BIN = HERE / "axum" / "target" / "release" / "lf-e2e-axum"
NODE_DIR = HERE / "node"
IO_TIMEOUT = 3.0


class FrameworkMissing(Exception):
    pass


def _need(path: Path | str, what: str) -> str:
    p = shutil.which(str(path)) if not os.path.isabs(str(path)) else str(path)
    if not p or not os.path.exists(p):
        raise FrameworkMissing(f"{what} not found ({path}): {INSTALL_HINT}")
    return p


def _need_py(module: str) -> None:
    py = _need(VENV_BIN / "python", "e2e venv python")
    r = subprocess.run([py, "-c", f"import {module}"], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise FrameworkMissing(f"Python package {module} missing from .venv: {INSTALL_HINT}")


# --------------------------------------------------------------------------------------------
# Frameworks
# --------------------------------------------------------------------------------------------


class Framework:
    """One framework process (or nginx in front of one) on 127.0.0.1:port."""

    name = "?"

    def __init__(self):
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"lf-fw-{self.name}-"))
        os.chmod(self.workdir, 0o755)
        self.log_path = self.workdir / "handler.log"
        self.log_path.touch()
        os.chmod(self.log_path, 0o666)
        self.out_path = self.workdir / "out.txt"
        self.proc: subprocess.Popen | None = None

    # subclasses: command() -> (argv, extra env, cwd)
    def command(self) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> "Framework":
        argv, env, cwd = self.command()
        full_env = dict(os.environ, PORT=str(self.port), LF_FW_LOG=str(self.log_path), **env)
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not listening after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")[-3000:] if self.out_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)

    def close(self) -> None:
        self.stop()
        remove_workdir(self.workdir)

    def invocations(self) -> dict[str, list[str]]:
        """{x-fw-seq: [route, ...]} of every handler invocation so far."""
        out: dict[str, list[str]] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            route, _, seq = line.partition(" ")
            out.setdefault(seq, []).append(route)
        return out


class Express(Framework):
    def __init__(self, major: int):
        self.name = f"express{major}"
        self.major = major
        super().__init__()

    def command(self):
        node = _need("node", "node (Debian nodejs, 20+)")
        if not (NODE_DIR / "node_modules" / self.name / "package.json").is_file():
            raise FrameworkMissing(f"npm package {self.name} not installed in {NODE_DIR}: {INSTALL_HINT}")
        return [node, str(NODE_DIR / "app.js")], {"LF_EXPRESS": self.name}, NODE_DIR


class Gunicorn(Framework):
    def __init__(self, name: str, module: str, app: str):
        self.name = name
        self.module = module
        self.app = app
        super().__init__()

    def command(self):
        _need_py(self.module.split("_")[0] if self.module != "django_app" else "django")
        gunicorn = _need(VENV_BIN / "gunicorn", "gunicorn in .venv")
        return ([gunicorn, "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
                 f"{self.module}:{self.app}"], {}, HERE / "py")


class Flask(Gunicorn):
    def __init__(self):
        super().__init__("flask", "flask_app", "app")


class Django(Gunicorn):
    def __init__(self):
        super().__init__("django", "django_app", "application")


class FastAPI(Framework):
    name = "fastapi"

    def command(self):
        _need_py("fastapi")
        uvicorn = _need(VENV_BIN / "uvicorn", "uvicorn in .venv")
        return ([uvicorn, "fastapi_app:app", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "warning"], {}, HERE / "py")


class GoNetHttp(Framework):
    name = "go-nethttp"

    def command(self):
        return [_need(GO_BIN, "Go net/http test server (built by setup.sh)")], {}, HERE / "go"


class Axum(Framework):
    name = "axum"

    def command(self):
        return [_need(AXUM_BIN, "axum test server (built by setup.sh)")], {}, HERE / "axum"


TOMCAT_SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="access" suffix=".log" rotatable="false" buffered="false"
               pattern="%s %b %{{x-fw-seq}}i"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""
# The "handlers" are static files served by Tomcat's DefaultServlet (it answers POST like GET).
TOMCAT_FILES = {"md5": ("linksfield/sms", b"LF-HANDLER md5\n"),
                "cube": ("cube/notify", b"LF-HANDLER cube!\n")}


class Tomcat(Framework):
    """Debian tomcat10 with its own CATALINA_BASE; a static file at each protected path.
    An invocation = an access-log line with status 200 and the size of one of the files."""

    name = "tomcat10"

    def command(self):
        catalina = _need(TOMCAT_HOME / "bin" / "catalina.sh", "Tomcat 10 (Debian tomcat10)")
        _need("java", "java (Debian default-jre-headless, pulled in by tomcat10)")
        base = self.workdir / "base"
        for d in ("conf", "logs", "temp", "work", "webapps/ROOT"):
            (base / d).mkdir(parents=True, exist_ok=True)
        for f in ("web.xml", "logging.properties", "catalina.properties", "context.xml"):
            shutil.copy(TOMCAT_HOME / "etc" / f, base / "conf" / f)
        (base / "conf" / "server.xml").write_text(TOMCAT_SERVER_XML.format(port=self.port))
        for rel, content in TOMCAT_FILES.values():
            p = base / "webapps" / "ROOT" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)
        self.access_log = base / "logs" / "access.log"
        env = {"CATALINA_HOME": str(TOMCAT_HOME), "CATALINA_BASE": str(base),
               "CATALINA_TMPDIR": str(base / "temp"),
               "JAVA_OPTS": "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto"}
        # `catalina.sh run` execs java: the pid we hold is the JVM's.
        return [catalina, "run"], env, base

    def invocations(self):
        sizes = {str(len(content)): route for route, (_, content) in TOMCAT_FILES.items()}
        out: dict[str, list[str]] = {}
        if not self.access_log.exists():
            return out
        for line in self.access_log.read_text(errors="replace").splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[0] == "200" and parts[1] in sizes:
                out.setdefault(parts[2], []).append(sizes[parts[1]])
        return out


NGINX_CONF = """worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
    }}
  }}
}}
"""


class NginxFront(Framework):
    """Debian nginx, default-ish reverse proxy (`location / { proxy_pass http://up; }`) in front
    of another framework; invocations are the upstream framework's."""

    def __init__(self, upstream: Framework):
        self.name = f"nginx+{upstream.name}"
        self.upstream = upstream
        super().__init__()

    def command(self):
        nginx = _need("nginx", "nginx (Debian nginx-light)")
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.workdir, port=self.port,
                                          upstream=self.upstream.port))
        # The master process stays in the foreground: our pid is the master's.
        return [nginx, "-p", str(self.workdir), "-e", "stderr", "-c", str(conf),
                "-g", "daemon off;"], {}, self.workdir

    def invocations(self):
        return self.upstream.invocations()


# --------------------------------------------------------------------------------------------
# Recording relay: raw TCP, client->upstream bytes recorded per connection
# --------------------------------------------------------------------------------------------


class Relay:
    """Listens on 127.0.0.1:port, forwards each connection to 127.0.0.1:upstream and records every
    byte sent upstream, per connection. retarget() points it at another framework and closes the
    open connections (Envoy's pooled ones too, so none stays tied to the old upstream)."""

    def __init__(self, upstream: int = 0):
        self.upstream = upstream
        self._lock = threading.Lock()
        self._conns: list[bytearray] = []
        self._open: list[socket.socket] = []
        self._sock = loopback_listener(128)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        self._close_open()

    def _close_open(self) -> None:
        with self._lock:
            socks, self._open = self._open, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def retarget(self, upstream: int) -> None:
        with self._lock:
            self.upstream = upstream
        self._close_open()
        time.sleep(0.3)  # let Envoy see the closes before the next request picks a connection

    def reset(self) -> None:
        with self._lock:
            for c in self._conns:
                c.clear()

    def connections(self) -> list[bytes]:
        with self._lock:
            return [bytes(c) for c in self._conns if c]

    def total_bytes(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._conns)

    def _accept_loop(self):
        accept_until(self._sock, self._stop, self._accepted)

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            rec = bytearray()
            self._conns.append(rec)
            upstream = self.upstream
        threading.Thread(target=self._serve, args=(conn, rec, upstream), daemon=True).start()

    def _serve(self, conn: socket.socket, rec: bytearray, upstream: int):
        try:
            up = socket.create_connection(("127.0.0.1", upstream), timeout=IO_TIMEOUT)
        except OSError:
            conn.close()
            return
        with self._lock:
            self._open.extend([conn, up])

        def pump(src, dst, record):
            src.settimeout(0.5)
            try:
                while not self._stop.is_set():
                    try:
                        data = src.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    if record:
                        with self._lock:
                            rec.extend(data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(up, conn, False), daemon=True)
        back.start()
        pump(conn, up, True)
        back.join(timeout=30)
        with self._lock:
            self._open = [s for s in self._open if s not in (conn, up)]
        conn.close()
        up.close()


# --------------------------------------------------------------------------------------------
# Raw client
# --------------------------------------------------------------------------------------------


def raw_request(target: bytes, headers: list[tuple[str, str]], body: bytes, seq: str) -> bytes:
    head = b"POST " + target + b" HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    for k, v in headers:
        head += k.encode("latin-1") + b": " + v.encode("latin-1") + b"\r\n"
    head += (b"x-fw-seq: " + seq.encode() + b"\r\ncontent-length: " + str(len(body)).encode()
             + b"\r\nconnection: close\r\n\r\n")
    return head + body


_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")
_CL = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


def send_raw(port: int, data: bytes, timeout: float = IO_TIMEOUT) -> tuple[int, bytes]:
    """Send raw bytes on a new connection; (status or 0 if none, response bytes). Returns once
    the response is complete (Content-Length), at EOF or at the timeout."""
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(data)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                m = _CL.search(buf[: end + 2])
                if m and len(buf) >= end + 4 + int(m.group(1)):
                    break
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            buf += chunk
    m = _STATUS.match(buf)
    return (int(m.group(1)) if m else 0), buf
