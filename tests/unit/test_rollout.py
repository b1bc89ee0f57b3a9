"""The rollout plan (which hosts in which wave) and the loop that stops at a failed wave."""

from __future__ import annotations

import threading
import time

import pytest

from deployer.config import validate_config
from deployer.errors import ConfigError
from deployer.rollout import Stop, describe, roll_out, waves

HOSTS = [f"h{i}" for i in range(1, 9)]


@pytest.mark.parametrize(
    ("hosts", "canary", "wave", "plan"),
    [
        (HOSTS[:1], 1, None, [["h1"]]),  # one host: it is the whole plan
        (HOSTS[:4], 1, None, [["h1"], ["h2", "h3", "h4"]]),  # the defaults: canary, then the rest at once
        (HOSTS, 1, 3, [["h1"], ["h2", "h3", "h4"], ["h5", "h6", "h7"], ["h8"]]),
        (HOSTS[:4], 2, 1, [["h1", "h2"], ["h3"], ["h4"]]),
        (HOSTS[:4], 0, None, [["h1", "h2", "h3", "h4"]]),  # no canary: all at once
        (HOSTS[:4], 0, 2, [["h1", "h2"], ["h3", "h4"]]),
        (HOSTS[:3], 5, None, [["h1", "h2", "h3"]]),  # a canary larger than the fleet is the fleet
        (HOSTS[:4], 1, 1, [["h1"], ["h2"], ["h3"], ["h4"]]),  # one by one, as before waves
        ([], 1, None, []),
    ],
)
def test_which_hosts_in_which_wave(hosts, canary, wave, plan):
    assert waves(hosts, canary, wave) == plan
    assert [h for w in plan for h in w] == hosts, "every host once, in the configured order"


def test_the_plan_is_said_in_one_line():
    assert describe([["h1"], ["h2", "h3"]], canary=1) == "rollout: canary h1; then wave 2 h2, h3"
    assert describe([["h1", "h2"]], canary=0) == "rollout: wave 1 h1, h2"


def test_rollout_config_defaults_and_bad_values():
    app = {"app": {"name": "svc"}}
    assert validate_config(app).rollout.canary == 1
    assert validate_config(app).rollout.wave is None
    assert validate_config({**app, "rollout": {"canary": 0, "wave": 2}}).rollout.wave == 2
    with pytest.raises(
        ConfigError, match=r"deploy.toml: rollout.wave: Input should be greater than or equal to 1"
    ):
        validate_config({**app, "rollout": {"wave": 0}})
    with pytest.raises(ConfigError, match="rollout.waves: unknown key"):
        validate_config({**app, "rollout": {"waves": 2}})


def test_a_failed_wave_is_the_last_and_its_passing_hosts_stay_switched():
    switched: list[str] = []
    lock = threading.Lock()

    def switch(host: str) -> bool:
        with lock:
            switched.append(host)
        return host != "h3"

    plan = waves(HOSTS[:6], 1, 2)  # [h1] [h2 h3] [h4 h5] [h6]
    stop, untouched = roll_out(plan, switch, str)
    assert stop == Stop(2, ("h3",))
    assert stop.reason == "wave 2 failed (h3): not switched"
    assert sorted(switched) == ["h1", "h2", "h3"] and untouched == ["h4", "h5", "h6"]


def test_a_failed_canary_switches_nothing_else():
    stop, untouched = roll_out(waves(HOSTS[:4], 1, None), lambda h: False, str)
    assert stop is not None and stop.reason == "the canary failed (h1): not switched"
    assert untouched == ["h2", "h3", "h4"]
    stop, _ = roll_out(waves(HOSTS[:4], 0, 2), lambda h: h != "h1", str, canary=False)
    assert stop is not None and stop.reason == "wave 1 failed (h1): not switched"


def test_every_wave_passes():
    assert roll_out(waves(HOSTS, 1, 3), lambda h: True, str) == (None, [])


def test_the_hosts_of_a_wave_are_switched_at_once_and_waves_one_after_another():
    spans: dict[str, tuple[float, float]] = {}

    def switch(host: str) -> bool:
        t0 = time.monotonic()
        time.sleep(0.2)
        spans[host] = (t0, time.monotonic())
        return True

    roll_out(waves(HOSTS[:4], 1, None), switch, str)
    canary_end = spans["h1"][1]
    rest = [spans[h] for h in ("h2", "h3", "h4")]
    assert all(start >= canary_end for start, _ in rest), "the rest waits for the canary's gate"
    assert max(s for s, _ in rest) < min(e for _, e in rest), "a wave's hosts overlap in time"


def test_every_host_is_said_to_run_exactly_one_release():
    from deployer.commands.deploy import runs_line
    from deployer.pipeline import HostRun
    from deployer.remote.ssh import Endpoint
    from deployer.summary import HostResult, Result, Summary

    old, new = "20261126T101500Z-3f2a9c1", "20261126T110000Z-c07551d"
    outcomes = {
        "a": Result.SUCCESS,
        "b": Result.REVERTED,  # its engine switched back to what it ran
        "c": Result.NOT_SWITCHED,
        "d": Result.FAILED,  # failed to stage: never switched
        "e": Result.UNKNOWN,  # link lost after the switch, no outcome read back
    }
    runs = [
        HostRun(Endpoint(k, k, 22, "u"), HostResult(k, result, new), current=old)
        for k, result in outcomes.items()
    ]
    for r in runs:
        r.settle()
    summary = Summary("deploy", new, "1.1", [r.result for r in runs])
    assert summary.runs == {"a": new, "b": old, "c": old, "d": old, "e": None}
    assert runs_line(summary) == f"runs: {new} on a; {old} on b, c, d; nothing known on e"


def test_the_summary_names_each_hosts_wave_and_release():
    from deployer.commands.deploy import summary_data, summary_text
    from deployer.summary import HostResult, Result, Summary

    hosts = [
        HostResult("a", Result.SUCCESS, "r2", "2.0", healthy_s=0.5, gate_s=10.5, wave=1, running="r2"),
        HostResult(
            "b", Result.REVERTED, "r2", "2.0", detail="b: unhealthy; switched back", wave=2, running="r1"
        ),
        HostResult("c", Result.NOT_SWITCHED, "r2", "2.0", detail="wave 2 failed (b): not switched", wave=3),
    ]
    summary = Summary("deploy", "r2", "2.0", hosts, 21.3, [["a"], ["b"], ["c"]])
    assert summary_text(summary, canary=True).splitlines() == [
        "deploy FAILED in 21.3s",
        "  a: success r2 2.0 healthy 0.50s, gate closed 10.50s",
        "    runs r2 (wave 1, the canary)",
        "  b: reverted r2 2.0",
        "    b: unhealthy; switched back",
        "    runs r1 (wave 2)",
        "  c: not switched r2 2.0",
        "    wave 2 failed (b): not switched",
        "    runs nothing known (wave 3)",
        "runs: r2 on a; r1 on b; nothing known on c",
    ]
    data = summary_data(summary)
    assert data["waves"] == [["a"], ["b"], ["c"]] and data["runs"] == {"a": "r2", "b": "r1", "c": None}
    assert [h["wave"] for h in data["hosts"]] == [1, 2, 3]
    one = Summary("deploy", "r2", "2.0", hosts[:1], 1.0, [["a"]])
    assert summary_text(one, canary=True).splitlines()[-1] == "    runs r2", "one host: no wave, no runs line"


def test_a_wave_waits_for_its_hosts_and_one_not_ready_fails_it_unswitched():
    """``ready`` is asked for every host of a wave before it is switched (the pipeline's
    waits for the host's staging); a wave with a host not ready switches none of it."""
    asked: list[str] = []
    switched: list[str] = []

    def ready(host: str) -> bool:
        asked.append(host)
        return host != "h4"  # h4 failed to stage

    plan = waves(HOSTS[:6], 1, 2)  # [h1] [h2 h3] [h4 h5] [h6]
    stop, untouched = roll_out(plan, lambda h: switched.append(h) or True, str, ready=ready)
    assert stop == Stop(3, ("h4",))
    assert stop.reason == "wave 3 failed (h4): not switched"
    assert sorted(switched) == ["h1", "h2", "h3"], "nothing of the failed wave is switched"
    assert untouched == ["h5", "h6"], "the failed wave's ready host and the later waves"
    assert asked == ["h1", "h2", "h3", "h4", "h5"], "each wave is asked only when its turn comes"


def test_a_canary_not_ready_switches_nothing():
    switched: list[str] = []
    stop, untouched = roll_out(waves(HOSTS[:3], 1, None), switched.append, str, ready=lambda h: h != "h1")
    assert stop is not None and stop.reason == "the canary failed (h1): not switched"
    assert switched == [] and untouched == ["h2", "h3"]
