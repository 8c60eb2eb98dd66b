"""
The plan that puts a rule list in order (_utils/rule_order.py, used by the pvefw states), carried
out by the emulator as PVE would: the result is the wanted list, with as few moves as the rules already in order allow,
and fixed rules (the user's) are never deleted or moved.
"""

import itertools
import random

import pytest

import rule_order


def _rule(name):
    return {"type": "in", "action": "ACCEPT", "enable": "1", "comment": name}


def _carry_out(api, group, plan, rule_of):
    path = f"/cluster/firewall/groups/{group}"
    for operation, where, moveto in plan:
        if operation == "delete":
            api.call("DELETE", f"{path}/{where}", {})
        elif operation == "insert":
            api.call("POST", path, rule_of[where])
        else:
            api.call("PUT", f"{path}/{where}", {"moveto": moveto})
    return [rule["comment"] for rule in api.call("GET", path, {})]


def _group(api, group, names):
    api.call("POST", "/cluster/firewall/groups", {"group": group})
    for name in reversed(names):  # POST inserts at the top
        api.call("POST", f"/cluster/firewall/groups/{group}", _rule(name))


@pytest.mark.parametrize("current", [list(p) for p in itertools.permutations("abcd")])
def test_every_order_of_four_is_put_right_with_the_fewest_moves(pve_cluster, current):
    _group(pve_cluster, "grp", current)
    wanted = list("abcd")
    plan = rule_order.plan(current, wanted)
    assert _carry_out(pve_cluster, "grp", plan, {}) == wanted
    in_order = len(rule_order.longest_ordered([wanted.index(k) for k in current]))
    assert len(plan) == len(wanted) - in_order


def test_deletes_inserts_and_moves_together(pve_cluster):
    rng = random.Random(7)
    for round_ in range(20):
        current = rng.sample("abcdefgh", rng.randint(0, 8))
        wanted = rng.sample("abcdefghij", rng.randint(1, 10))
        _group(pve_cluster, f"grp{round_}", current)
        plan = rule_order.plan(current, wanted)
        assert _carry_out(pve_cluster, f"grp{round_}", plan, {k: _rule(k) for k in wanted}) == wanted


def test_fixed_rules_are_neither_moved_nor_deleted(pve_cluster):
    current = ["u1", "b", "u2", "a", "u3"]
    wanted = ["a", "b", "c", "u1", "u2", "u3"]
    _group(pve_cluster, "grp", current)
    plan = rule_order.plan(current, wanted, fixed={"u1", "u2", "u3"})
    simulated = list(current)
    for operation, where, moveto in plan:  # the fixed rules are never the ones acted on
        if operation == "insert":
            simulated.insert(0, where)
            continue
        assert not simulated[where].startswith("u"), plan
        item = simulated.pop(where)
        if operation == "move":
            simulated.insert(moveto - 1 if where < moveto else moveto, item)
    assert _carry_out(pve_cluster, "grp", plan, {"c": _rule("c")}) == wanted


def test_new_rules_land_in_place_without_moves(pve_cluster):
    wanted = ["m", "w", "g1", "g2", "u1", "u2"]
    _group(pve_cluster, "grp", ["u1", "u2"])
    plan = rule_order.plan(["u1", "u2"], wanted, fixed={"u1", "u2"})
    assert [operation for operation, _, _ in plan] == ["insert"] * 4
    assert _carry_out(pve_cluster, "grp", plan, {k: _rule(k) for k in wanted}) == wanted
