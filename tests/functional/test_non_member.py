"""A minion of the same master that is not a node of the federation is left alone."""

import pytest


@pytest.fixture(scope="module")
def minion_id():
    return "backup-server"


def test_not_a_member_gets_a_notice_only(loaders):
    ret = loaders.modules.state.apply("evpn")
    (state,) = ret.raw.values()
    assert state["result"] is True
    assert state["changes"] == {}
    assert state["comment"] == (
        "backup-server is not a node of the evpn federation (evpn:sites:*:nodes): nothing to do"
    )
