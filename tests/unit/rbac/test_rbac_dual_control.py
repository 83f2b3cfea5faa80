"""Dual control (pure): two distinct approvers, neither the author."""

import pytest

from keel.rbac.dual_control import dual_signed


@pytest.mark.parametrize(
    ("author", "approvers", "expected"),
    [
        ("alice", ["bob", "carol"], True),
        ("alice", {"bob", "carol", "dave"}, True),
        ("alice", ("bob", "carol"), True),
        ("alice", [], False),
        ("alice", ["bob"], False),
        ("alice", ["bob", "bob"], False),  # one person signing twice is one signature
        ("alice", ["alice"], False),
        ("alice", ["alice", "bob"], False),
        ("alice", ["alice", "bob", "carol"], False),  # a self-approval taints the set
        ("alice", ["bob", "", None], False),  # empty ids are no one
        (None, ["bob", "carol"], True),  # no recorded author: two distinct approvers suffice
    ],
)
def test_a_change_is_dual_signed_only_by_two_distinct_approvers_other_than_its_author(
    author, approvers, expected
):
    assert dual_signed(author, approvers) is expected


def test_approvers_may_be_any_iterable_consumed_once():
    assert dual_signed("alice", iter(["bob", "carol"])) is True
