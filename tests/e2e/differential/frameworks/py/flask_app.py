"""Flask, default options (served by gunicorn): one handler per protected path."""

import os

from flask import Flask, request

app = Flask(__name__)
LOG = os.environ["LF_FW_LOG"]


def _record(route: str) -> str:
    with open(LOG, "a") as f:
        f.write(f"{route} {request.headers.get('x-fw-seq', '-')}\n")
    return f"LF-HANDLER {route}\n"


@app.post("/linksfield/sms")
def sms():
    return _record("md5")


@app.post("/cube/notify")
def notify():
    return _record("cube")
