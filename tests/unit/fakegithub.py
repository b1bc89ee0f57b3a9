"""A small stand-in of the GitHub REST API on 127.0.0.1, for the workflow scripts.

It serves the endpoints `.github/scripts/*.sh` call, in the shape GitHub documents
(https://docs.github.com/rest/actions/artifacts, .../actions/workflow-runs):

  GET /repos/{owner}/{repo}/actions/artifacts?name=N&per_page=P   {"total_count", "artifacts": [...]}
  GET /repos/{owner}/{repo}/actions/artifacts/{artifact_id}       one artifact
  GET /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts?name=N
  GET /repos/{owner}/{repo}/actions/runs/{run_id}                  one workflow run

Every request must carry ``Authorization: Bearer <token>`` (401 otherwise, as GitHub
answers a bad token); anything else is a 404 ``{"message": "Not Found"}``. Artifacts are
listed newest first, as GitHub lists them.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REPO = "acme/svc"
REPO_ID = 1296269
FORK = "mallory/svc"
FORK_ID = 6660001


def run(
    run_id: int,
    sha: str,
    *,
    path: str = ".github/workflows/deploy.yml",
    event: str = "push",
    branch: str = "main",
    fork: bool = False,
    repo: str = REPO,
) -> dict:
    """A workflow run of ``repo`` (or of a pull request from FORK), as GET .../runs/{id} shows it."""
    head_name, head_id = (FORK, FORK_ID) if fork else (repo, REPO_ID)
    return {
        "id": run_id,
        "name": path.rsplit("/", 1)[-1].removesuffix(".yml"),
        "node_id": f"WFR_{run_id}",
        "head_branch": branch,
        "head_sha": sha,
        "path": path,
        "run_number": run_id % 1000,
        "event": event,
        "status": "completed",
        "conclusion": "success",
        "workflow_id": 161335,
        "url": f"https://api.github.com/repos/{repo}/actions/runs/{run_id}",
        "html_url": f"https://github.com/{repo}/actions/runs/{run_id}",
        "repository": {"id": REPO_ID, "name": repo.split("/")[1], "full_name": repo},
        "head_repository": {"id": head_id, "name": repo.split("/")[1], "full_name": head_name},
    }


def artifact(
    artifact_id: int,
    name: str,
    of_run: dict,
    *,
    expired: bool = False,
    size: int = 556,
    digest: str = "0" * 64,
) -> dict:
    """An artifact uploaded by ``of_run``, as GET .../artifacts/{id} shows it."""
    repo = of_run["repository"]["full_name"]
    return {
        "id": artifact_id,
        "node_id": f"MDg6QXJ0aWZhY3Q{artifact_id}",
        "name": name,
        "size_in_bytes": size,
        "url": f"https://api.github.com/repos/{repo}/actions/artifacts/{artifact_id}",
        "archive_download_url": f"https://api.github.com/repos/{repo}/actions/artifacts/{artifact_id}/zip",
        "expired": expired,
        "created_at": "2026-11-26T10:15:00Z",
        "expires_at": "2026-12-26T10:15:00Z",
        "updated_at": "2026-11-26T10:15:00Z",
        "digest": f"sha256:{digest}",
        "workflow_run": {
            "id": of_run["id"],
            "repository_id": of_run["repository"]["id"],
            "head_repository_id": of_run["head_repository"]["id"],
            "head_branch": of_run["head_branch"],
            "head_sha": of_run["head_sha"],
        },
    }


@dataclass
class FakeGitHub:
    token: str = "ghs_standin-token-0123456789abcdef"
    artifacts: list = field(default_factory=list)  # oldest first; listed newest first
    runs: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)  # (path, authorized)
    url: str = ""
    repo: str = REPO
    prefix: str = ""  # where the API is mounted: "" as api.github.com, "/api/v3" as GitHub Enterprise

    def uploaded(self) -> list[dict]:
        """Every artifact, oldest first."""
        return self.artifacts

    def add(self, *items: dict) -> None:
        for item in items:
            if "workflow_run" in item:
                self.artifacts.append(item)
            else:
                self.runs[item["id"]] = item

    def answer(self, target: str, authorization: str | None) -> tuple[int, dict]:
        # GitHub takes either scheme; curl here sends Bearer, octokit sends token
        authorized = authorization in (f"Bearer {self.token}", f"token {self.token}")
        parts = urlsplit(target)
        self.requests.append((target, authorized))
        if not authorized:
            return 401, {"message": "Bad credentials"}
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        prefix = f"{self.prefix}/repos/{self.repo}/actions"
        artifacts = self.uploaded()
        newest_first = list(reversed(artifacts))
        if parts.path == f"{prefix}/artifacts":
            found = [a for a in newest_first if "name" not in query or a["name"] == query["name"]]
            found = found[: int(query.get("per_page", 30))]
            return 200, {"total_count": len(found), "artifacts": found}
        if m := re.fullmatch(rf"{prefix}/artifacts/(\d+)", parts.path):
            for a in artifacts:
                if a["id"] == int(m.group(1)):
                    return 200, a
        if m := re.fullmatch(rf"{prefix}/runs/(\d+)/artifacts", parts.path):
            found = [
                a
                for a in newest_first
                if a["workflow_run"]["id"] == int(m.group(1)) and query.get("name", a["name"]) == a["name"]
            ]
            return 200, {"total_count": len(found), "artifacts": found}
        if (m := re.fullmatch(rf"{prefix}/runs/(\d+)", parts.path)) and int(m.group(1)) in self.runs:
            return 200, self.runs[int(m.group(1))]
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


def serve(fake: FakeGitHub):
    """Start ``fake`` on 127.0.0.1 (a free port) in a thread; returns the server to shut down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = fake.answer(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet
            pass

    return listen(Handler, fake)


def listen(handler: type[BaseHTTPRequestHandler], fake: FakeGitHub) -> ThreadingHTTPServer:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; ``fake.url`` says where."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
