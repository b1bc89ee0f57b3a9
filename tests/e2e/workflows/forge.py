"""A local stand-in for github.com, for running the workflows with act on 127.0.0.1.

act runs the jobs and serves the artifact upload/download protocol of one run itself
(``--artifact-server-path``). What it cannot give is served here, in the shape GitHub
documents, at the URLs act hands the steps (``GITHUB_SERVER_URL`` = this server,
``GITHUB_API_URL`` = this server + ``/api/v3``, as for GitHub Enterprise Server):

- git over smart HTTP, ``/<owner>/<name>``, by ``git http-backend``: what
  ``actions/checkout`` fetches (every checkout runs for real, ``--no-skip-checkout``);
- the REST API the workflow scripts and ``download-artifact`` (with ``run-id``) call:
  ``tests/unit/fakegithub.py``'s endpoints, plus ``GET .../actions/artifacts/{id}/zip``
  (a 302 to the zip, as GitHub redirects to its blob storage). The artifacts are the
  ones act's artifact server keeps, ``<dir>/<run id>/<name>/<name>.zip``, listed for
  the runs the harness registered (``add(run(...))``): artifacts across runs, which act
  alone does not have.

Every API and git request must carry the run's token (401 otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.unit.fakegithub import FakeGitHub, artifact, listen

API = "/api/v3"
REPO_PATH = re.compile(r"^/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)(/(?:info/refs|git-upload-pack)(?:\?.*)?)$")
ZIP = re.compile(rf"^{API}/repos/([\w.-]+/[\w.-]+)/actions/artifacts/(\d+)/zip$")


def artifact_id(run_id: int, name: str) -> int:
    """Unique across runs (act's own id, an FNV-1a hash of the name, is not)."""
    h = 0x811C9DC5
    for byte in name.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return run_id * 2**32 + h


@dataclass
class Forge(FakeGitHub):
    git_root: Path = Path()
    artifact_dir: Path = Path()
    expired: set = field(default_factory=set)  # artifact ids to show as expired
    zips: dict = field(default_factory=dict)  # id -> the zip's path, for the download
    artifact_server: str = ""  # act's, for the run going on: requests to it pass through here
    created: list = field(default_factory=list)  # (run id, CreateArtifact request) as uploads asked

    def __post_init__(self) -> None:
        self.prefix = API

    def repository(self, name: str) -> Path:
        """A bare repository served at /<owner>/<name>; create it when missing."""
        path = self.git_root / name
        if not path.exists():
            path.mkdir(parents=True)
            subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
        return path

    def uploaded(self) -> list[dict]:
        found = []
        for run_id, of_run in self.runs.items():
            for zip_path in (self.artifact_dir / str(run_id)).glob("*/*.zip"):
                name = zip_path.parent.name
                if zip_path.name != f"{name}.zip":
                    continue
                data = zip_path.read_bytes()
                aid = artifact_id(run_id, name)
                self.zips[aid] = zip_path
                item = artifact(
                    aid,
                    name,
                    of_run,
                    expired=aid in self.expired,
                    size=len(data),
                    digest=hashlib.sha256(data).hexdigest(),
                )
                found.append((zip_path.stat().st_mtime_ns, item))
        return [item for _, item in sorted(found, key=lambda pair: pair[0])]

    def find(self, name: str, run_id: int) -> dict:
        """The artifact ``name`` of run ``run_id``, as the API lists it."""
        for item in self.uploaded():
            if item["name"] == name and item["workflow_run"]["id"] == run_id:
                return item
        raise LookupError(f"no artifact {name} in run {run_id}: {[a['name'] for a in self.uploaded()]}")

    def retention_days(self, name: str, run_id: int) -> float:
        """The retention an upload of ``name`` asked for (act keeps everything; GitHub would not)."""
        from datetime import datetime

        for run, request in self.created:
            if run == run_id and request.get("name") == name:
                stamp = re.sub(r"(\.\d{6})\d*", r"\1", request["expires_at"]).replace("Z", "+00:00")
                expires = datetime.fromisoformat(stamp)
                return (expires - datetime.fromisoformat(request["_at"])).total_seconds() / 86400
        raise LookupError(f"no upload of {name} in run {run_id}")

    def authorized(self, header: str | None) -> bool:
        if header in (f"Bearer {self.token}", f"token {self.token}"):
            return True
        # git sends checkout's token as basic auth (x-access-token:<token>)
        if header and header.lower().startswith("basic "):
            user_pass = base64.b64decode(header[6:]).decode(errors="replace")
            return user_pass.partition(":")[2] == self.token
        return False


def _git_backend(handler: BaseHTTPRequestHandler, forge: Forge, owner: str, name: str, rest: str) -> None:
    path, _, query = rest.partition("?")
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "GIT_PROJECT_ROOT": str(forge.git_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{owner}/{name}{path}",
        "QUERY_STRING": query,
        "REQUEST_METHOD": handler.command,
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
        "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
    }
    proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=120)
    head, _, payload = proc.stdout.partition(b"\r\n\r\n")
    status, headers = 200, []
    for line in head.decode().splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key:
            headers.append((key, value.strip()))
    handler.send_response(status if proc.returncode == 0 else 500)
    for key, value in headers:
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _pass_to_act(handler: BaseHTTPRequestHandler, forge: Forge) -> None:
    """The artifact service (ACTIONS_RUNTIME_URL) through here to act's own server, to see
    what each upload asked for (its name and expiry); act's answer unchanged."""
    import urllib.error
    import urllib.request
    from datetime import datetime

    body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    path = handler.path
    if path.endswith("/CreateArtifact"):
        request = json.loads(body)
        request["_at"] = datetime.now(UTC).isoformat()
        forge.created.append((int(request.get("workflow_run_backend_id") or 0), request))
    headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "authorization")}
    forwarded = urllib.request.Request(forge.artifact_server + path, data=body or None, headers=headers)
    forwarded.method = handler.command
    try:
        with urllib.request.urlopen(forwarded, timeout=60) as answer:
            status, data, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as refused:
        status, data, kind = refused.code, refused.read(), refused.headers.get("Content-Type", "")
    handler.send_response(status)
    handler.send_header("Content-Type", kind or "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def serve(forge: Forge) -> ThreadingHTTPServer:
    """Start ``forge`` on 127.0.0.1 (a free port) in a thread; returns the server to shut down."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, data: bytes, content_type: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> None:
            if self.path.startswith("/twirp/"):  # the artifact service: act's runtime token, not ours
                return _pass_to_act(self, forge)
            if self.path.startswith("/blobs/"):  # the redirect's target: no token, as a signed URL
                zip_path = forge.zips.get(int(self.path.rsplit("/", 1)[-1].removesuffix(".zip") or 0))
                if zip_path is None:
                    return self._send(404, b"", "text/plain")
                return self._send(200, zip_path.read_bytes(), "application/zip")
            if not forge.authorized(self.headers.get("Authorization")):
                forge.requests.append((self.path, False))
                extra = {"WWW-Authenticate": 'Basic realm="forge"'}
                return self._send(401, b'{"message": "Bad credentials"}', "application/json", extra)
            if m := REPO_PATH.match(self.path):
                return _git_backend(self, forge, m.group(1), m.group(2), m.group(3))
            if (m := ZIP.match(self.path)) and m.group(1) == forge.repo:
                forge.requests.append((self.path, True))
                forge.uploaded()  # refreshes the id -> zip map
                if int(m.group(2)) in forge.zips:
                    location = f"{forge.url}/blobs/{m.group(2)}.zip"
                    return self._send(302, b"", "text/plain", {"Location": location})
            status, body = forge.answer(self.path, self.headers.get("Authorization"))
            self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")

        do_GET = do_POST = do_PUT = _route

        def log_message(self, *args):  # quiet
            pass

    return listen(Handler, forge)
