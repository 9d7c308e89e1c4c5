"""FastAPI (Starlette), default options (served by uvicorn): one handler per protected path."""

import os

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

app = FastAPI()
LOG = os.environ["LF_FW_LOG"]


def _record(request: Request, route: str) -> PlainTextResponse:
    with open(LOG, "a") as f:
        f.write(f"{route} {request.headers.get('x-fw-seq', '-')}\n")
    return PlainTextResponse(f"LF-HANDLER {route}\n")


@app.post("/linksfield/sms")
async def sms(request: Request):
    return _record(request, "md5")


@app.post("/cube/notify")
async def notify(request: Request):
    return _record(request, "cube")
