"""Reading back an activation's outcome after a lost link (pure part)."""

from __future__ import annotations

from deployer.recovery import activation_outcome

R1, R2 = "20261126T101500Z-3f2a9c1", "20261126T110000Z-3e286a1"


def test_the_outcome_is_the_record_after_the_last_live_one():
    records = [
        {"to": R1, "result": "live"},
        {"to": R1, "result": "reverted"},  # an earlier activation of the same release
        {"to": R2, "result": "live"},
        {"to": R2, "result": "success"},
        {"to": R1, "result": "live"},
    ]
    assert activation_outcome(records, R1) is None, "the gate of the last activation is still open"
    assert activation_outcome([*records, {"to": R1, "result": "success", "gate_s": 3}], R1)["gate_s"] == 3
    assert activation_outcome(records, R2)["result"] == "success"
    assert activation_outcome([], R1) is None
