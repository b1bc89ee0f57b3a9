"""The package index's simple API, asked what the cooldown needs (a thin network edge).

``GET <index>/<name>/`` with ``Accept: application/vnd.pypi.simple.v1+json`` (PEP 691)
lists a project's files with their sha256 and, by PEP 700, their upload time. Only the
build asks, and only with ``artifact.min_age_days`` set.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from deployer import __version__
from deployer.builder.cooldown import Upload, parse_simple_api

PYPI_SIMPLE = "https://pypi.org/simple"
ACCEPT = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 30.0
WORKERS = 8


def release_files(
    name: str, version: str, index: str = PYPI_SIMPLE, timeout: float = TIMEOUT
) -> list[Upload] | str:
    """The files of ``name`` ``version`` on the index, or why the index could not say."""
    url = f"{index.rstrip('/')}/{quote(name)}/"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "User-Agent": f"deployer/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            if not answer.headers.get("Content-Type", "").startswith(ACCEPT):
                return f"the index at {index} does not answer the JSON simple API (PEP 691)"
            doc = json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return "the index does not list this project" if e.code == 404 else f"the index answered {e.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        return f"the index could not be asked ({getattr(e, 'reason', e)})"
    except ValueError as e:
        return f"the index's answer is not JSON ({e})"
    files = parse_simple_api(doc, version)
    return files or "the index lists no file of this version"


def releases_files(
    releases: list[tuple[str, str]], index: str = PYPI_SIMPLE, timeout: float = TIMEOUT
) -> dict[tuple[str, str], list[Upload] | str]:
    """``release_files`` of every (name, version), asked a few at a time."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        answers = pool.map(lambda r: release_files(r[0], r[1], index, timeout), releases)
        return dict(zip(releases, answers, strict=False))
