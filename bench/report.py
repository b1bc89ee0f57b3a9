"""Medians, ratios, targets and the profile, from a run's JSON lines (pure functions).

``python -m bench.report FILE [REFERENCE]`` prints the report of a saved run again.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

#: kind -> (label, the baseline it is compared with)
ROWS = [
    ("first", "(a) first deploy, empty host", "baseline-first"),
    ("code-new", "(b) code-only redeploy, new commit", "baseline-redeploy"),
    ("code-reactivate", "(b') redeploy of a release the host has", "baseline-redeploy"),
    ("rollback", "(c) rollback", "baseline-rollback"),
    ("head", "(e) `deployer deploy` from HEAD, code-only commit, build included", "baseline-redeploy"),
    ("handover", "(h) code-only redeploy, new commit, [service] handover", "baseline-redeploy"),
    ("handover-rollback", "(h') rollback, [service] handover + standby", "baseline-rollback"),
    ("baseline-first", "baseline: first deploy, empty host", None),
    ("baseline-redeploy", "baseline: redeploy (new version)", None),
    ("baseline-rollback", "baseline: rollback (`ln -sfn` + restart + poll)", None),
]
PROFILE_KINDS = ["first", "code-new", "code-reactivate", "rollback", "head", "handover", "handover-rollback"]
TARGET_CODE_BYTES = 200_000  # issue 7
TARGET_ROLLBACK_S = 2.0  # issue 7
#: issue 16 section 3: from a commit to healthy, and each figure against the same baseline job
TARGET_CODE_S = 2.0  # code-only redeploy of a built artifact (issue 7: 3 s)
TARGET_FIRST_RATIO = 0.35  # first deploy / the baseline's, both with the smoke test (issue 7: 1/3 without)
TARGET_ROLLBACK_RATIO = 1.0  # rollback / the baseline's own rollback
TARGET_BUILD_WARM_S = 1.5  # warm `deployer build`, code-only commit
TARGET_HEAD_S = 4.0  # `deployer deploy` from HEAD, build included, to healthy
#: issue 16: rollouts, downtime, socket activation
TARGET_FLEET_EXTRA_S = 15.0  # T(8) - T(1), watch 10 s: two gates (10 s) + 5 s
TARGET_WINDOW_RATIO = 0.5  # unavailability window, deployer / baseline
TARGET_STEADY_FAILED = 0  # refused or failed requests, socket-activated notes_api
WINDOW_ROWS = [
    ("code-new", "(b) code-only redeploy, new commit"),
    ("code-reactivate", "(b') redeploy of a release the host has"),
    ("rollback", "(c) rollback"),
    ("handover", "(h) code-only redeploy, new commit, [service] handover"),
    ("handover-rollback", "(h') rollback, [service] handover + standby"),
    ("baseline-redeploy", "baseline: redeploy (new version)"),
]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def human_bytes(n: float) -> str:
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def of(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r.get("kind") == kind]


def med(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    m = fmt.format(statistics.median(values))
    if len(values) == 1:
        return m
    return f"{m} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def bytes_spread(values: list[int]) -> str:
    if not values:
        return "-"
    m = human_bytes(statistics.median(values))
    if len(values) == 1 or human_bytes(min(values)) == human_bytes(max(values)):
        return m
    return f"{m} ({human_bytes(min(values))}–{human_bytes(max(values))})"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "-"
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def summary(records: list[dict]) -> dict[str, dict]:
    out = {}
    for kind, _, _ in ROWS + [("gate", "", None)]:
        rs = of(records, kind)
        if rs:
            out[kind] = {
                "n": len(rs),
                "to_healthy_s": med([r["to_healthy_s"] for r in rs]),
                "to_healthy_ext_s": med([r["to_healthy_ext_s"] for r in rs]),
                "wall_s": med([r["wall_s"] for r in rs]),
                "tx_bytes": med([r["tx_bytes"] for r in rs]),
                "tx_to_healthy": med([r["tx_to_healthy"] for r in rs]),
            }
    return out


def table(records: list[dict]) -> str:
    s = summary(records)
    lines = [
        "| | n | to healthy, s: median (min–max) | probe in guest, s | whole command, s "
        "| sent to host (veth, SSH incl.) | of which until healthy | ÷ baseline (time) "
        "| ÷ baseline (bytes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, label, base in ROWS:
        rs = of(records, kind)
        if not rs:
            continue
        b = s.get(base) if base else None
        lines.append(
            f"| {label} | {len(rs)} | {spread([r['to_healthy_s'] for r in rs])} "
            f"| {spread([r['to_healthy_ext_s'] for r in rs])} | {spread([r['wall_s'] for r in rs])} "
            f"| {bytes_spread([r['tx_bytes'] for r in rs])} "
            f"| {human_bytes(s[kind]['tx_to_healthy'])} "
            f"| {ratio(s[kind]['to_healthy_s'], b['to_healthy_s']) if b else ''} "
            f"| {ratio(s[kind]['tx_bytes'], b['tx_bytes']) if b else ''} |"
        )
    return "\n".join(lines)


def targets(records: list[dict]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the issue's four targets."""
    s = summary(records)
    out: list[tuple[str, str, bool | None]] = []

    def get(kind: str, key: str) -> float | None:
        return s.get(kind, {}).get(key)

    code, code_tx = get("code-new", "to_healthy_s"), get("code-new", "tx_bytes")
    out.append(
        (
            "code-only redeploy of a built artifact (new commit) <= 2.0 s to healthy",
            f"{code:.2f} s" if code is not None else "-",
            None if code is None else code <= TARGET_CODE_S,
        )
    )
    out.append(
        (
            "code-only redeploy < 200 KB sent",
            human_bytes(code_tx) if code_tx is not None else "-",
            None if code_tx is None else code_tx < TARGET_CODE_BYTES,
        )
    )
    first, base = get("first", "to_healthy_s"), get("baseline-first", "to_healthy_s")
    out.append(
        _ratio_target(
            "first deploy ÷ the baseline's, both with the same smoke test, <= 0.35",
            first,
            base,
            TARGET_FIRST_RATIO,
        )
    )
    rb = get("rollback", "to_healthy_s")
    out.append(
        (
            "rollback <= 2 s to healthy (issue 7)",
            f"{rb:.2f} s" if rb is not None else "-",
            None if rb is None else rb <= TARGET_ROLLBACK_S,
        )
    )
    out.append(
        _ratio_target(
            "rollback ÷ the baseline's own rollback <= 1.0",
            rb,
            get("baseline-rollback", "to_healthy_s"),
            TARGET_ROLLBACK_RATIO,
        )
    )
    out.append(
        _ratio_target(
            "rollback ÷ the baseline's own rollback <= 1.0, [service] handover + standby",
            get("handover-rollback", "to_healthy_s"),
            get("baseline-rollback", "to_healthy_s"),
            TARGET_ROLLBACK_RATIO,
        )
    )
    warm = med([r["seconds"] for r in of(records, "build-warm")])
    cold = med([r["seconds"] for r in of(records, "build-cold")])
    out.append(
        (
            "warm `deployer build`, code-only commit, <= 1.5 s",
            f"{warm:.2f} s" + (f" (cold: {cold:.2f} s)" if cold is not None else "")
            if warm is not None
            else "-",
            None if warm is None else warm <= TARGET_BUILD_WARM_S,
        )
    )
    head = get("head", "to_healthy_s")
    out.append(
        (
            "`deployer deploy` from HEAD, code-only commit, build included, to healthy, <= 4 s",
            f"{head:.2f} s" if head is not None else "-",
            None if head is None else head <= TARGET_HEAD_S,
        )
    )
    return out


def _ratio_target(name: str, a: float | None, b: float | None, limit: float) -> tuple[str, str, bool | None]:
    r = a / b if a is not None and b else None
    measured = f"{r:.2f} ({a:.2f} s vs {b:.2f} s)" if r is not None and a is not None and b else "-"
    return name, measured, None if r is None else r <= limit


def window(records: list[dict], kind: str) -> float | None:
    """The median unavailability window of ``kind``: old release's last answer to the new one's first."""
    return med([r.get("window_s") for r in of(records, kind)])


def window_table(records: list[dict]) -> str:
    rows = [(label, [r.get("window_s") for r in of(records, kind)]) for kind, label in WINDOW_ROWS]
    rows = [(label, values) for label, values in rows if any(v is not None for v in values)]
    if not rows:
        return ""
    base = window(records, "baseline-redeploy")
    lines = [
        "| unavailable (last answer of the old release -> first of the new, probed every 20 ms "
        "in the guest) | n | s: median (min–max) | ÷ baseline |",
        "|---|---|---|---|",
    ]
    for label, values in rows:
        m = med(values)
        lines.append(f"| {label} | {len(values)} | {spread(values, '{:.3f}')} | {ratio(m, base)} |")
    return "\n".join(lines)


def fleet(records: list[dict], mode: str, n: int) -> dict | None:
    return next((r for r in of(records, "rollout") if r["mode"] == mode and r["hosts"] == n), None)


def fleet_table(records: list[dict]) -> str:
    sizes = sorted({r["hosts"] for r in of(records, "rollout")})
    if not sizes:
        return ""
    watch = of(records, "rollout")[0].get("watch_s")
    one = fleet(records, "waves", 1)
    lines = [
        f"| hosts (watch {watch} s) | canary, then the rest at once: every host gated, s | T(N) − T(1) "
        "| of which the canary / the waves after it | one host at a time (wave = 1), same run, s "
        "| every host staged, s | smoke test per host, s | guests' CPU, s (machine busy) | sent per host |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        w, s1 = fleet(records, "waves", n), fleet(records, "one-by-one", n)
        if not w:
            continue
        extra = split = "-"
        if one:
            extra = f"{w['to_gated_s'] - one['to_gated_s']:.2f}"
            canary, after = fleet_split(w, one)
            split = f"{canary:.2f} / {after:.2f}"
        serial = f"{s1['to_gated_s']:.2f}" if s1 else ("(the same plan)" if n == 1 else "-")
        cpu = w.get("cpu") or {}
        used = sum(x for x in cpu.get("guest_cpu_s", []) if x is not None)
        busy = f"{used:.1f} ({cpu['machine_busy'] * 100:.0f}% of {cpu['machine_cpus']} CPUs)" if cpu else "-"
        lines.append(
            f"| {n} | {w['to_gated_s']:.2f} | {extra} | {split} | {serial} | {w['staged_s']:.2f} "
            f"| {spread(w.get('smoke_s', []))} | {busy} | {bytes_spread(w['tx_per_host'])} |"
        )
    first = of(records, "rollout-first")
    if first:
        f = first[0]
        lines.append(
            f"\nThe fleet's first deploy (v1, {f['hosts']} hosts, canary then the rest): every host gated "
            f"after {f['to_gated_s']:.2f} s, {bytes_spread(f['tx_per_host'])} per host."
        )
    return "\n".join(lines)


def fleet_split(many: dict, one: dict) -> tuple[float, float]:
    """T(N) − T(1) as (how much later the canary's gate closed than one host's; the waves
    after it). Runs from before the others staged during the canary's gate (no
    ``canary_gated_s``): (every host staged later; the gates and restarts after it)."""
    if "canary_gated_s" in many:
        return many["canary_gated_s"] - one["to_gated_s"], many["to_gated_s"] - many["canary_gated_s"]
    staging = many["staged_s"] - one["staged_s"]
    return staging, (many["to_gated_s"] - one["to_gated_s"]) - staging


def steady_table(records: list[dict]) -> str:
    rs = of(records, "steady")
    if not rs:
        return ""
    r0 = rs[0]
    lines = [
        f"| notes_api, a request every {r0['every_s'] * 1000:.0f} ms during {r0['deploys']} deploys + "
        f"{r0['rollbacks']} rollbacks | requests | refused | failed | worst latency, s | p99, s "
        "| answered after waiting > 0.1 s |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "own port": "the service binds its own port (baseline)",
        "socket": "[service] socket (socket-activated)",
    }
    for r in rs:
        lines.append(
            f"| {names.get(r['mode'], r['mode'])} | {r['requests']} | {r['refused']} | {r['failed']} "
            f"| {r['worst_s']:.3f} | {r['p99_s']:.3f} | {r['waited']} |"
        )
    return "\n".join(lines)


def rollout_targets(records: list[dict]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for issue 16's rollout, downtime and socket figures."""
    out: list[tuple[str, str, bool | None]] = []
    one, eight = fleet(records, "waves", 1), fleet(records, "waves", 8)
    big = max(
        (r for r in of(records, "rollout") if r["mode"] == "waves"), key=lambda r: r["hosts"], default=None
    )
    if one and eight:
        extra = eight["to_gated_s"] - one["to_gated_s"]
        canary, after = fleet_split(eight, one)
        measured = (
            f"{extra:.2f} s (T(8) {eight['to_gated_s']:.2f} s, T(1) {one['to_gated_s']:.2f} s; "
            f"the canary gated +{canary:.2f} s later than one host alone, the waves after it "
            f"+{after:.2f} s)"
        )
        met: bool | None = extra <= TARGET_FLEET_EXTRA_S
    elif one and big and big["hosts"] > 1:
        measured = (
            f"not measured with 8; T({big['hosts']}) − T(1) = {big['to_gated_s'] - one['to_gated_s']:.2f} s"
        )
        met = None
    else:
        measured, met = "-", None
    out.append(("8 hosts vs 1, every host healthy and gated, watch 10 s: T(8) − T(1) <= 15 s", measured, met))
    base = window(records, "baseline-redeploy")
    hand, code = window(records, "handover"), window(records, "code-new")
    mine = hand if hand is not None else code
    r = mine / base if mine is not None and base else None
    how = "[service] handover" if hand is not None else "no handover measured: stop, then start"
    plain = f"; without handover {code / base:.2f}" if hand is not None and code is not None and base else ""
    out.append(
        (
            "unavailability window per deploy, bot example, deployer ÷ baseline <= 0.5",
            f"{r:.2f} ({mine:.3f} s vs {base:.3f} s, {how}{plain})"
            if r is not None and mine is not None
            else "-",
            None if r is None else r <= TARGET_WINDOW_RATIO,
        )
    )
    sock = next((x for x in of(records, "steady") if x["mode"] == "socket"), None)
    own = next((x for x in of(records, "steady") if x["mode"] == "own port"), None)
    out.append(
        (
            "refused/failed requests during 10 deploys + 10 rollbacks, socket-activated notes_api = 0",
            f"{sock['failed']} of {sock['requests']} (worst latency {sock['worst_s']:.3f} s)"
            + (f"; without the socket {own['failed']} of {own['requests']}" if own else "")
            if sock
            else "-",
            None if sock is None else sock["failed"] <= TARGET_STEADY_FAILED,
        )
    )
    return out


def targets_met(records: list[dict]) -> bool:
    """Every target that was measured in this run is met (a part not run misses nothing)."""
    return all(met is not False for _, _, met in targets(records) + rollout_targets(records))


def profile(records: list[dict], kind: str, min_gap: float = 0.005) -> list[tuple[str, float, float]]:
    """(segment, median s, share of the median to healthy) up to the healthy moment.

    Segments are the engine's and the controller's steps plus the gaps between them
    ("before X": work no event covers, named for the step that follows), in the order
    they happen. Gaps whose median is under ``min_gap`` are summed into one line.
    """
    rs = of(records, kind)
    if not rs:
        return []
    per: dict[str, list[float]] = {}
    begins: dict[str, list[float]] = {}
    for r in rs:
        sums: dict[str, float] = {}
        for name, a, b in r.get("timeline", []):
            if a >= r["healthy_at_s"] - 1e-6:
                continue
            sums[name] = sums.get(name, 0.0) + max(0.0, min(b, r["healthy_at_s"]) - a)
            begins.setdefault(name, []).append(a)
        for name in set(per) | set(sums):
            per.setdefault(name, []).append(sums.get(name, 0.0))
    for values in per.values():  # a segment missing from a run counts as 0 there
        values.extend([0.0] * (len(rs) - len(values)))
    total = med([r["healthy_at_s"] for r in rs]) or 1.0
    order = sorted(per, key=lambda n: med(begins[n]) or 0.0)
    out, small = [], 0.0
    for name in order:
        m = med(per[name]) or 0.0
        if name.startswith("before ") and name != "before lock" and m < min_gap:
            small += m
            continue
        out.append((name, m, m / total))
    if small:
        out.append((f"other gaps between steps (each < {min_gap * 1000:.0f} ms)", small, small / total))
    return out


def after_healthy(records: list[dict], kind: str) -> float | None:
    rs = of(records, kind)
    return med([r["wall_s"] - r["healthy_at_s"] for r in rs]) if rs else None


def baseline_profile(records: list[dict], kind: str) -> list[tuple[str, float, float]]:
    rs = of(records, kind)
    if not rs:
        return []
    names = list(rs[0]["steps"])
    total = med([r["to_healthy_s"] for r in rs]) or 1.0
    return [
        (
            n,
            med([r["steps"].get(n, 0.0) for r in rs]) or 0.0,
            (med([r["steps"].get(n, 0.0) for r in rs]) or 0.0) / total,
        )
        for n in names
    ]


def steps_table(records: list[dict], kind: str, title: str) -> str:
    rs = of(records, kind)
    if not rs:
        return ""
    lines = [f"| {title} | median s (min–max) |", "|---|---|"]
    for name in rs[0]["steps"]:
        lines.append(f"| {name.strip()} | {spread([r['steps'][name] for r in rs], '{:.3f}')} |")
    return "\n".join(lines)


def build_table(records: list[dict]) -> str:
    rs = of(records, "build-cold") + of(records, "build-warm")
    if not rs:
        return ""
    names = {
        "build-cold": "cold: an empty deployer cache (uv's and pip's own as they are)",
        "build-warm": "warm: one more code-only commit",
    }
    lines = [
        "| `deployer build -o DIR` of the example, whole process | seconds | artifact |",
        "|---|---|---|",
    ]
    for r in rs:
        lines.append(
            f"| {names[r['kind']]} (#{r['rep']}) | {r['seconds']:.2f} | {human_bytes(r['artifact_bytes'])} |"
        )
    m = rs[-1]["members"]
    parts = ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(m.items(), key=lambda kv: -kv[1]))
    return "\n".join(lines) + f"\n\nartifact members: {parts}"


def comparison(records: list[dict], reference: list[dict]) -> str:
    """Now against the reference run; the ratios to the same run's baseline are the fairer
    comparison on a noisy machine."""
    now, ref = summary(records), summary(reference)
    lines = [
        "| vs reference | to healthy now | reference | change | ÷ baseline now | reference "
        "| sent now | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bases = {kind: base for kind, _, base in ROWS}
    for kind, label, _ in ROWS:
        if kind in now and kind in ref:
            a, b = now[kind]["to_healthy_s"], ref[kind]["to_healthy_s"]
            base = bases[kind]
            rn = ratio(a, now.get(base, {}).get("to_healthy_s")) if base else ""
            rr = ratio(b, ref.get(base, {}).get("to_healthy_s")) if base else ""
            lines.append(
                f"| {label} | {a:.2f} s | {b:.2f} s | {(a - b) / b * 100:+.0f}% | {rn} | {rr} "
                f"| {human_bytes(now[kind]['tx_bytes'])} | {human_bytes(ref[kind]['tx_bytes'])} |"
            )
    stamp = next((r.get("stamp") for r in reference if r.get("kind") == "run"), "?")
    return f"Compared with bench/results/reference.jsonl (run {stamp}):\n\n" + "\n".join(lines)


SEGMENTS = {
    "before lock": "before lock: process start, imports, check artifact, connect, engine start",
    "before upload": "before upload: thin tar written",
    "before unpack": "before unpack: the stage call, the upload's manifest read",
}


def _segment(name: str) -> str:
    return SEGMENTS.get(name, name)


def render(records: list[dict], reference: list[dict] | None = None) -> str:
    run = next((r for r in records if r.get("kind") == "run"), {})
    out = [
        "",
        f"## deploy benchmark {run.get('stamp', '')}: {run.get('nproc')} CPUs, "
        f"{run.get('cpu')}, kernel {run.get('kernel')}, {run.get('reps')} repetitions",
        "",
        table(records),
        "",
        "Targets:",
        "",
    ]
    for name, measured, met in targets(records) + rollout_targets(records):
        mark = "n/a" if met is None else ("MET" if met else "MISSED")
        out.append(f"- {name}: {measured} -> {mark}")
    for extra in (window_table(records), fleet_table(records), steady_table(records)):
        if extra:
            out += ["", extra]
    gate = of(records, "gate")
    if gate:
        g = gate[0]
        out += [
            "",
            f"Watch window (not in 'to healthy'): with --watch {g.get('watch_s')} the gate "
            f"closed {g['gate_s']:.2f} s after the restart (healthy after "
            f"{g['engine_healthy_s']:.2f} s); deploy.toml asks for health.watch = 60.",
        ]
    for kind in PROFILE_KINDS:
        prof = profile(records, kind)
        if not prof:
            continue
        label = next(lbl for k, lbl, _ in ROWS if k == kind)
        out += [
            "",
            f"Profile, {label} (medians; to healthy {summary(records)[kind]['to_healthy_s']:.2f} s):",
            "",
            "| segment | s | share |",
            "|---|---|---|",
        ]
        out += [f"| {_segment(n)} | {v:.3f} | {share * 100:.0f}% |" for n, v, share in prof]
        ah = after_healthy(records, kind)
        if ah is not None:
            out.append(f"| (after healthy: gate, prune, bye, journal excerpt, exit) | {ah:.3f} | |")
    for kind in ("baseline-first", "baseline-redeploy", "baseline-rollback"):
        prof = baseline_profile(records, kind)
        if prof:
            out += ["", f"Profile, {kind} (medians):", "", "| phase | s | share |", "|---|---|---|"]
            out += [f"| {n} | {v:.3f} | {share * 100:.0f}% |" for n, v, share in prof]
    for extra in (
        steps_table(records, "controller", "controller step (measured apart)"),
        steps_table(records, "host-steps", "host step, as the deploy user (measured apart)"),
        build_table(records),
    ):
        if extra:
            out += ["", extra]
    if reference:
        out += ["", comparison(records, reference)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    recs = load(Path(sys.argv[1]))
    ref = load(Path(sys.argv[2])) if len(sys.argv) > 2 else None
    print(render(recs, ref))
