"""Python runtime of test_parsers.py: reads JSON lines (one request each) on stdin, answers one
JSON line per request with the views of Python's own parsers:

- py.stdlib: `json.loads` (JSON bodies) or `urllib.parse.parse_qsl` (form bodies); the query with
  `parse_qs`.
- py.werkzeug: a werkzeug `Request` built from a WSGI environ holding the raw bytes: form bodies
  through `request.values` (args and form merged, as Flask's `request.values` does), JSON bodies
  through `request.get_json()`; the query through `request.args`.

Protocol (shared by every runtime): request {"id", "method", "path" (with query), "headers":
[[name, value]...], "body": base64, "keys": [signed keys]}; answer {"id", "views": {name: view}},
view = {"error": text} or {"params": [[key, text, type]...] (everything the view sees),
"get": {signed key: [text, type] or null} (what an app reads under that name),
"query": [[key, value]...] or null}. Types: string number bool null object array.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from urllib.parse import parse_qs, parse_qsl, unquote_to_bytes

from werkzeug.wrappers import Request


def typed(v):
    if isinstance(v, bool):
        return ["true" if v else "false", "bool"]
    if v is None:
        return ["", "null"]
    if isinstance(v, str):
        return [v, "string"]
    if isinstance(v, (int, float)):
        return [repr(v) if isinstance(v, float) else str(v), "number"]
    kind = "object" if isinstance(v, dict) else "array"
    return [json.dumps(v, separators=(",", ":"), ensure_ascii=False), kind]


def header(req, name):
    for k, v in req["headers"]:
        if k.lower() == name:
            return v
    return None


def kind_of(req):
    ctype = (header(req, "content-type") or "").lower()
    if "json" in ctype:
        return "json"
    if "x-www-form-urlencoded" in ctype:
        return "form"
    return "other"


def stdlib_view(req, body):
    path = req["path"]
    query = path.split("?", 1)[1] if "?" in path else ""
    qd = parse_qs(query, keep_blank_values=True)
    qpairs = [[k, v] for k, vs in qd.items() for v in vs]
    kind = kind_of(req)
    if kind == "json":
        obj = json.loads(body)
        if not isinstance(obj, dict):
            raise ValueError(f"top-level {type(obj).__name__}")
        params = [[k, *typed(v)] for k, v in obj.items()]
        get = {k: (typed(obj[k]) if k in obj else None) for k in req["keys"]}
    elif kind == "form":
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        params = [[k, v, "string"] for k, v in pairs]
        d = dict(pairs)  # what dict(parse_qsl(...)) gives an app: last wins
        get = {k: ([d[k], "string"] if k in d else None) for k in req["keys"]}
    else:
        raise ValueError("no body parser for this content type")
    return {"params": params, "get": get, "query": qpairs}


def werkzeug_view(req, body):
    path = req["path"]
    raw_path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": req["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    for k, v in req["headers"]:
        name = k.upper().replace("-", "_")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = v
        elif name == "CONTENT_LENGTH":
            continue  # the body as recorded (chunked framing already removed)
        else:
            key = "HTTP_" + name
            environ[key] = environ[key] + "," + v if key in environ else v
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        # A WSGI server that removed the chunked framing says so (werkzeug's dev server and
        # gunicorn do); the body here is the de-chunked one.
        environ["wsgi.input_terminated"] = True
    r = Request(environ)
    qpairs = [[k, v] for k, v in r.args.items(multi=True)]
    kind = kind_of(req)
    if kind == "form":
        vals = r.values  # CombinedMultiDict(args, form): what Flask's request.values reads
        params = [[k, v, "string"] for k, v in vals.items(multi=True)]
        get = {k: ([vals.get(k), "string"] if k in vals else None) for k in req["keys"]}
    elif kind == "json":
        obj = r.get_json(force=False, silent=False)
        if not isinstance(obj, dict):
            raise ValueError(f"top-level {type(obj).__name__}")
        params = [[k, *typed(v)] for k, v in obj.items()]
        get = {k: (typed(obj[k]) if k in obj else None) for k in req["keys"]}
    else:
        raise ValueError("no body parser for this content type")
    return {"params": params, "get": get, "query": qpairs}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        body = base64.b64decode(req["body"])
        views = {}
        for name, fn in (("py.stdlib", stdlib_view), ("py.werkzeug", werkzeug_view)):
            try:
                views[name] = fn(req, body)
            except Exception as e:  # noqa: BLE001 - the parser's refusal is the view
                views[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        sys.stdout.write(json.dumps({"id": req["id"], "views": views}, ensure_ascii=True) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
