"""Call a running studio's events the way a browser (or an attacker) does: by ``fn_index`` through
``POST /gradio_api/queue/join`` and the SSE stream ``GET /gradio_api/queue/data``, including events
that are hidden from the API docs. Also uploads through ``POST /gradio_api/upload``.
"""
from __future__ import annotations

import json
import mimetypes
import urllib.request
import uuid
from pathlib import Path


def config(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/config", timeout=30) as r:
        return json.load(r)


def fn_index(url: str, api_name: str) -> int:
    """The ``fn_index`` (dependency id) of the event whose function is named ``api_name``."""
    for d in config(url)["dependencies"]:
        if d.get("api_name") == api_name:
            return int(d["id"])
    raise KeyError(f"no event named {api_name!r}")


def upload(url: str, path: str | Path) -> str:
    """Upload a file as a visitor does; returns the server path Gradio gives back."""
    path = Path(path)
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)[0]


def file_value(server_path: str, name: str | None = None) -> dict:
    """A gr.File / gr.Audio input value pointing at ``server_path``."""
    return {"path": server_path, "orig_name": name or Path(server_path).name, "meta": {"_type": "gradio.FileData"}}


def call(url: str, index: int, data: list, session_hash: str | None = None, timeout: float = 120.0) -> dict:
    """Run event ``index`` with ``data``; returns ``{"success": bool, "data": [...], "error": str | None}``."""
    session_hash = session_hash or uuid.uuid4().hex[:10]
    payload = {"data": data, "fn_index": index, "session_hash": session_hash, "event_data": None,
               "trigger_id": None}
    req = urllib.request.Request(f"{url}/gradio_api/queue/join", data=json.dumps(payload).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            json.load(r)
    except urllib.error.HTTPError as err:
        return {"success": False, "data": None, "error": err.read().decode(errors="replace"), "status": err.code}
    with urllib.request.urlopen(f"{url}/gradio_api/queue/data?session_hash={session_hash}", timeout=timeout) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_completed":
                out = msg.get("output") or {}
                return {"success": bool(msg.get("success")), "data": out.get("data"),
                        "error": out.get("error"), "title": out.get("title")}
            if msg.get("msg") == "unexpected_error":
                return {"success": False, "data": None, "error": msg.get("message")}
    return {"success": False, "data": None, "error": "stream ended without a result"}
