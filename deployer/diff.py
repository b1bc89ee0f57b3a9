"""``deployer diff``: what changes from one release to another (pure: inventories in).

Two inventories (``host/inventory.py``: of artifacts, or of releases a host keeps) make
one dict: the service's files added, removed or changed; dependencies added, removed or
changed (version, sha256); ``.pth`` files new or changed in any wheel (code that runs at
every interpreter start); templates and host config changed; the ``.env`` keys added or
removed. Keys only, never a value: an inventory holds no value of a ``.env``.
"""

from __future__ import annotations

import difflib

#: at most this many lines of a template's diff are shown as text (JSON has them all)
TEMPLATE_LINES = 40


def _sets(a: dict, b: dict) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, kept) keys from ``a`` to ``b``, sorted."""
    return sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys()), sorted(a.keys() & b.keys())


def _side(inv: dict) -> dict:
    return {k: inv[k] for k in ("app", "version", "release_id", "format")} | {"commit": inv["git"].get("sha")}


def _files(a: dict, b: dict) -> dict:
    added, removed, kept = _sets(a, b)
    return {"added": added, "removed": removed, "changed": [p for p in kept if a[p] != b[p]]}


def _dependencies(a: dict, b: dict) -> dict:
    added, removed, kept = _sets(a, b)

    def facts(d: dict) -> dict:
        return {"name": d["name"], "version": d["version"], "sha256": d["sha256"]}

    return {
        "added": [facts(b[n]) for n in added],
        "removed": [facts(a[n]) for n in removed],
        "changed": [
            {"name": n, "from": facts(a[n]), "to": facts(b[n])}
            for n in kept
            if a[n]["sha256"] != b[n]["sha256"]
        ],
    }


def _wheels(inv: dict) -> dict:
    """Every wheel by name, the service's own included."""
    return {
        **inv["dependencies"],
        **({inv["app_wheel"]["name"]: inv["app_wheel"]} if inv["app_wheel"] else {}),
    }


def _pth(a: dict, b: dict) -> dict:
    """.pth files by (wheel, file): new ones (also those of an added wheel), changed, gone."""

    def of(inv: dict) -> dict:
        return {(w, p): h for w, wheel in _wheels(inv).items() for p, h in wheel["pth"].items()}

    old, new = of(a), of(b)
    row = lambda key, h: {"wheel": key[0], "file": key[1], "sha256": h}  # noqa: E731
    return {
        "added": [row(k, new[k]) for k in sorted(new.keys() - old.keys())],
        "changed": [row(k, new[k]) for k in sorted(new.keys() & old.keys()) if new[k] != old[k]],
        "removed": [row(k, old[k]) for k in sorted(old.keys() - new.keys())],
    }


def _templates(a: dict, b: dict) -> dict:
    added, removed, kept = _sets(a, b)
    changed = {}
    for name in kept:
        if a[name] != b[name]:
            changed[name] = [
                line.rstrip("\n")
                for line in difflib.unified_diff(
                    a[name].splitlines(keepends=True), b[name].splitlines(keepends=True), n=1
                )
            ][2:]  # without the ---/+++ header
    return {"added": added, "removed": removed, "changed": changed}


def _config(a: dict, b: dict) -> dict:
    keys = sorted(a.keys() | b.keys())
    return {k: {"from": a.get(k), "to": b.get(k)} for k in keys if a.get(k) != b.get(k)}


def _names(a: list[str] | None, b: list[str] | None) -> dict | None:
    if a is None or b is None:
        return None
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b))}


def _env(a: dict, b: dict) -> dict:
    """The keys each side names: ``required``, ``public`` (values shown, not masked) and,
    on a host, the ``keys`` of the .env each release ran with (None: unknown)."""
    return {part: _names(a[part], b[part]) for part in ("required", "public", "keys")}


def diff(a: dict, b: dict) -> dict:
    """What changes from inventory ``a`` to inventory ``b``."""
    app_a, app_b = a["app_wheel"] or {"files": {}}, b["app_wheel"] or {"files": {}}
    return {
        "from": _side(a),
        "to": _side(b),
        "app_files": _files(app_a["files"], app_b["files"]),
        "dependencies": _dependencies(a["dependencies"], b["dependencies"]),
        "pth": _pth(a, b),
        "templates": _templates(a["templates"], b["templates"]),
        "config": _config(a["config"], b["config"]),
        "env": _env(a["env"], b["env"]),
    }


def is_empty(d: dict) -> bool:
    """Nothing but the versions differ (or not even they)."""
    parts = [d["app_files"], d["dependencies"], d["pth"], d["templates"]]
    env = [e for e in d["env"].values() if e]
    same_format = d["from"]["format"] == d["to"]["format"]
    return not any(v for p in parts + env for v in p.values()) and not d["config"] and same_format


def _short(sha: str) -> str:
    return f"sha256:{sha[:12]}"


def _dep_line(mark: str, dep: dict) -> str:
    return f"  {mark} {dep['name']} {dep['version']} ({_short(dep['sha256'])})"


def _counts(title: str, part: dict) -> str:
    return (
        f"{title}: {len(part['added'])} added, {len(part['removed'])} removed, {len(part['changed'])} changed"
    )


def render(d: dict) -> str:
    """The diff as text for a person."""
    a, b = d["from"], d["to"]
    lines = [
        f"{a['app']} {a['version']} ({a['release_id']}) -> {b['app']} {b['version']} ({b['release_id']})"
    ]
    if a["format"] != b["format"]:
        lines.append(f"format: {a['format']} -> {b['format']}")
    files = d["app_files"]
    if any(files.values()):
        lines.append(_counts(f"{b['app']} files", files))
        for mark, part in (("+", "added"), ("-", "removed"), ("~", "changed")):
            lines += [f"  {mark} {p}" for p in files[part]]
    deps = d["dependencies"]
    if any(deps.values()):
        lines.append(_counts("dependencies", deps))
        lines += [_dep_line("+", x) for x in deps["added"]]
        lines += [_dep_line("-", x) for x in deps["removed"]]
        for c in deps["changed"]:
            old, new = c["from"], c["to"]
            what = (
                f"{old['version']} -> {new['version']}"
                if old["version"] != new["version"]
                else f"{new['version']}, other bytes"
            )
            lines.append(f"  ~ {c['name']} {what} ({_short(old['sha256'])} -> {_short(new['sha256'])})")
    pth = d["pth"]
    if any(pth.values()):
        lines.append(
            f".pth files (run at every interpreter start): {len(pth['added'])} new, "
            f"{len(pth['changed'])} changed, {len(pth['removed'])} removed"
        )
        for mark, part in (("+", "added"), ("~", "changed"), ("-", "removed")):
            lines += [f"  {mark} {p['file']} in {p['wheel']} ({_short(p['sha256'])})" for p in pth[part]]
    templates = d["templates"]
    if any(templates.values()):
        lines.append(_counts("templates", templates))
        lines += [f"  + {t}" for t in templates["added"]] + [f"  - {t}" for t in templates["removed"]]
        for name, text in templates["changed"].items():
            lines.append(f"  ~ {name}")
            lines += [f"      {line}" for line in text[:TEMPLATE_LINES]]
            if len(text) > TEMPLATE_LINES:
                lines.append(f"      ... {len(text) - TEMPLATE_LINES} more lines (--json has them all)")
    if d["config"]:
        lines.append(f"host config: {len(d['config'])} changed")
        lines += [f"  ~ {k}: {v['from']!r} -> {v['to']!r}" for k, v in d["config"].items()]
    env = {part: names for part, names in d["env"].items() if names and any(names.values())}
    if env:
        lines.append(".env keys (names only):")
        label = {"required": "[env] required", "public": "[env] public", "keys": "in the .env it ran with"}
        for part, names in env.items():
            lines += [f"  + {k} ({label[part]})" for k in names["added"]]
            lines += [f"  - {k} ({label[part]})" for k in names["removed"]]
    if is_empty(d):
        lines.append("no other differences")
    return "\n".join(lines)
