"""A steady loop of HTTP requests, run INSIDE a staging guest (standard library only).

    python3 request_loop.py URL --every 0.02 --until /tmp/stop

One request after another on a fresh connection each, ``--every`` seconds apart, until
the file ``--until`` exists; then one JSON list on stdout, a row per request:
``[sent (Unix time), seconds to the answer, HTTP status or the error's name, version]``.
A refused connection is ``"ConnectionRefusedError"``; the version is the answer's
``"version"`` (None when there is none).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from urllib.parse import urlsplit


def one(host: str, port: int, path: str, timeout: float) -> tuple[object, object]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(65536)
        try:
            version = json.loads(body).get("version")
        except (ValueError, AttributeError):
            version = None
        return resp.status, version
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__, None
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--every", type=float, default=0.02, help="seconds between requests")
    p.add_argument("--until", required=True, help="stop once this file exists")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    p.add_argument("--max-seconds", type=float, default=600.0)
    args = p.parse_args(argv)
    url = urlsplit(args.url)
    rows = []
    deadline = time.monotonic() + args.max_seconds
    while not os.path.exists(args.until) and time.monotonic() < deadline:
        sent = time.time()
        t0 = time.monotonic()
        status, version = one(url.hostname or "127.0.0.1", url.port or 80, url.path or "/", args.timeout)
        rows.append([round(sent, 4), round(time.monotonic() - t0, 4), status, version])
        time.sleep(args.every)
    json.dump(rows, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
