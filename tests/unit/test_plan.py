"""The plan's fixed order: ``ConnectorPlan.sort`` (buckets by rank, a string key for member
changes) puts changes in the order of ``Change.sort_key``."""

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
