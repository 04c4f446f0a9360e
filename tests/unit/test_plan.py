"""The plan's fixed order: ``ConnectorPlan.sort`` (buckets by rank, member changes sorted a
group at a time) puts changes in the order of ``Change.sort_key``."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from syncd.plan import (
    AddMember,
    Change,
    ChangeRole,
    ConnectorPlan,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    RemoveMember,
    SetMemberStatus,
)

# names where one is a prefix of another, or differs only after a space or a low character
NAMES = ["a", "ab", "a b", "a\x01", "b", "B", "é", ""]
names = st.sampled_from(NAMES)


def changes() -> st.SearchStrategy[Change]:
    return st.one_of(
        st.builds(AddMember, names, names, st.just("member"), st.just("accepted"),
                  st.just("r")),
        st.builds(ChangeRole, names, names, st.just("member"), st.just("owner"),
                  st.just("r")),
        st.builds(SetMemberStatus, names, names, st.just("accepted"),
                  st.just("deactivated"), st.just("r")),
        st.builds(RemoveMember, names, names, st.just("r")),
        st.builds(CreateUser, names, st.none(), st.booleans(), st.just("s")),
        st.builds(CreateGroup, names, st.just("s"), st.just("e"), st.just("r"),
                  st.just({})),
        st.builds(DeleteGroup, names, st.just("s"), st.just("r")),
    )


@given(st.lists(changes(), max_size=40))
@example([AddMember("a b", "x", "member", "accepted", "r"),
          AddMember("a", "z", "member", "accepted", "r"),
          AddMember("ab", "a", "member", "accepted", "r"),
          AddMember("a", "y", "member", "accepted", "r")])
def test_sort_gives_the_order_of_sort_key(items: list[Change]) -> None:
    cp = ConnectorPlan("c", "full", changes=list(items))
    cp.sort()
    assert cp.changes == sorted(items, key=Change.sort_key)
    # stable: changes with equal keys keep the order the diff made them in
    assert [id(c) for c in cp.changes] == [id(c) for c in sorted(items, key=Change.sort_key)]


@given(st.lists(changes(), max_size=40), st.lists(changes(), max_size=3))
def test_counts_are_those_of_the_sorted_changes(items: list[Change],
                                                more: list[Change]) -> None:
    """The sort counts the changes on its way: the counts are the ops of the sorted changes
    in the order they first appear, and are counted afresh once the list changes."""
    cp = ConnectorPlan("c", "full", changes=list(items))
    cp.sort()
    counts = cp.counts()
    expected = {op: sum(1 for c in cp.changes if c.op == op)
                for op in dict.fromkeys(c.op for c in cp.changes)}
    assert list(counts.items()) == list(expected.items())
    counts["add_member"] += 100  # the caller's copy
    assert cp.counts() == expected
    cp.changes.extend(more)
    assert cp.counts() == {op: sum(1 for c in cp.changes if c.op == op)
                           for op in {c.op for c in cp.changes}}
    cp.changes = list(reversed(cp.changes))
    assert cp.counts() == {op: sum(1 for c in cp.changes if c.op == op)
                           for op in {c.op for c in cp.changes}}
