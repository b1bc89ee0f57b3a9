"""The build's cooldown: no dependency younger than ``artifact.min_age_days`` (pure).

Most supply-chain attacks on the package index are found and pulled within days, so a
build may refuse (``artifact.min_age_policy = "refuse"``) or warn about (``"warn"``) a
wheel uploaded less than ``min_age_days`` before the build's reference time: the commit
time, the moment the lock is resolved "as the index was" (``--exclude-newer``). Ages are
of the very file shipped, found on the index by its sha256 (a file added later to an old
version counts from its own upload); a wheel built here from an sdist counts from the
sdist's upload. A wheel the index cannot vouch for (not listed, other bytes) has no age:
refused, or warned about, like a young one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from deployer.builder.wheelhouse import normalize
from deployer.host.wheeltags import wheel_tags

DAY = 86400.0


@dataclass(frozen=True)
class Upload:
    """One file of a release as the index lists it."""

    filename: str
    sha256: str | None
    uploaded: datetime | None
    packagetype: str  # "bdist_wheel", "sdist", ...


@dataclass(frozen=True)
class Finding:
    """A shipped wheel the cooldown does not let through: too young, or of unknown age."""

    name: str
    version: str
    filename: str
    uploaded: datetime | None  # None: the index cannot say (``why`` says why)
    age_days: float | None
    why: str

    def describe(self) -> str:
        if self.uploaded is None:
            return f"{self.name} {self.version} ({self.filename}): {self.why}"
        age = self.age_days or 0.0
        when = f"{age:.1f} days before the commit" if age >= 0 else f"{-age:.1f} days after the commit"
        return f"{self.name} {self.version} ({self.filename}) was uploaded {iso(self.uploaded)}, {when}"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_simple_api(doc: dict, version: str) -> list[Upload]:
    """The files of ``version`` in a project's page of the simple API as JSON (PEP 691),
    each with its sha256 and its PEP 700 ``upload-time``."""
    files = []
    for f in doc.get("files") or []:
        filename = str(f.get("filename", ""))
        if file_version(filename) != version.lower():
            continue
        stamp = f.get("upload-time")
        files.append(
            Upload(
                filename=filename,
                sha256=(f.get("hashes") or {}).get("sha256"),
                uploaded=parse_time(stamp) if isinstance(stamp, str) else None,
                packagetype="bdist_wheel" if filename.endswith(".whl") else "sdist",
            )
        )
    return files


def file_version(filename: str) -> str | None:
    """The version a distribution file's name carries (wheel or sdist), lowercased."""
    if filename.endswith(".whl"):
        try:
            return wheel_tags(filename)[1].lower()
        except ValueError:
            return None
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ext):
            stem = filename[: -len(ext)]
            return stem.rsplit("-", 1)[1].lower() if "-" in stem else None
    return None


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def uploaded(filename: str, sha256: str, files: list[Upload]) -> tuple[datetime | None, str]:
    """When the index got the file shipped as ``filename`` (its bytes ``sha256``), and,
    when it cannot say, why."""
    same = [f for f in files if f.sha256 == sha256]
    if same:
        return same[0].uploaded, "" if same[0].uploaded else "the index gives no upload time"
    if any(f.filename == filename for f in files):
        return None, "the index's file of that name has other bytes (sha256)"
    sdists = [f for f in files if f.packagetype == "sdist" and f.uploaded]
    if sdists:  # built here from the sdist
        return min(f.uploaded for f in sdists if f.uploaded), ""
    return None, "the index lists no such file, nor an sdist to build it from"


def check(
    wheels: dict[str, str],
    answers: dict[tuple[str, str], list[Upload] | str],
    reference: datetime,
    min_age_days: float,
) -> list[Finding]:
    """The shipped ``wheels`` (file name -> sha256) younger than ``min_age_days`` at
    ``reference``, or of unknown age; ``answers``: (name, version) -> the index's files of
    that release, or why it could not say. Youngest first, then the unknown."""
    found = []
    for filename in sorted(wheels):
        name, version = wheel_tags(filename)[:2]
        key = (normalize(name), version)
        answer = answers.get(key, "not asked")
        if isinstance(answer, str):
            found.append(Finding(key[0], version, filename, None, None, answer))
            continue
        when, why = uploaded(filename, wheels[filename], answer)
        if when is None:
            found.append(Finding(key[0], version, filename, None, None, why))
            continue
        age = (reference - when).total_seconds() / DAY
        if age < min_age_days:
            found.append(Finding(key[0], version, filename, when, age, ""))
    return sorted(found, key=lambda f: (f.age_days is None, f.age_days or 0.0, f.name))


def summary(findings: list[Finding], min_age_days: float) -> str:
    """One line: the first finding (the youngest), how many more, and the ways out."""
    first, more = findings[0], findings[1:]
    names = ", ".join(f.name for f in more[:5]) + (", ..." if len(more) > 5 else "")
    return (
        f"artifact.min_age_days = {min_age_days:g}: {first.describe()}"
        + (f" (and {len(more)} more: {names})" if more else "")
        + '; pin an older version or build a later commit (artifact.min_age_policy = "warn" only warns)'
    )
