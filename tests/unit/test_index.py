"""The source index resolves member refs the same way on its fast path (every ref a user's
DN, looked up in C) and on its general path (``lookup`` per ref)."""

from __future__ import annotations

import marshal

from hypothesis import example, given
from hypothesis import strategies as st

from syncd.index import Resolved, SourceIndex
from syncd.source import NAME_REF_PREFIX, SourceGroup, SourceUser

USER_REFS = [f"uid=u{i},ou=people,dc=example,dc=org" for i in range(5)]
GROUP_REFS = [f"cn=g{i},ou=groups,dc=example,dc=org" for i in range(3)]
OTHER_REFS = [
    "uid=gone,ou=people,dc=example,dc=org",  # dangling
    f"{NAME_REF_PREFIX}u1",  # a user by user name (rfc2307 memberUid)
    f"{NAME_REF_PREFIX}nobody",  # a user name that nobody has
]


def plain_resolution(index: SourceIndex, refs: list[str]) -> tuple[list[int], list[int],
                                                                     list[str]]:
    """What a group's refs resolve to, one ``lookup`` at a time, first occurrence kept."""
    users: list[int] = []
    groups: list[int] = []
    dangling: list[str] = []
    for ref in refs:
        kind, pos = index.lookup(ref)
        if kind == "user" and pos not in users:
            users.append(pos)
        elif kind == "group" and pos not in groups:
            groups.append(pos)
        elif kind is None:
            dangling.append(ref)
    return users, groups, dangling


def as_lists(res: Resolved) -> tuple[list[int], list[int], list[str]]:
    return list(res.users), list(res.groups), list(res.dangling)


member_lists = st.lists(st.lists(st.sampled_from(USER_REFS + GROUP_REFS + OTHER_REFS),
                                 max_size=12), min_size=len(GROUP_REFS),
                        max_size=len(GROUP_REFS))


@given(members=member_lists, odd_user_ref=st.booleans())
@example(members=[USER_REFS[:3] + USER_REFS[:2], [], [USER_REFS[4]]], odd_user_ref=False)
@example(members=[[USER_REFS[0], GROUP_REFS[1]], [OTHER_REFS[1], USER_REFS[1]], []],
         odd_user_ref=False)
@example(members=[[OTHER_REFS[1], USER_REFS[3]], [OTHER_REFS[0]], [USER_REFS[2]]],
         odd_user_ref=True)
def test_resolution_equals_a_lookup_per_ref(members: list[list[str]],
                                            odd_user_ref: bool) -> None:
    # odd_user_ref: one user's own ref starts with the name prefix, which turns the fast
    # path off (lookup reads such a ref as a user name).
    users = [SourceUser(external_id=f"id-u{i}", ref=ref, user_name=f"u{i}")
             for i, ref in enumerate(USER_REFS)]
    if odd_user_ref:
        users.append(SourceUser(external_id="id-odd", ref=OTHER_REFS[1], user_name="odd"))
    groups = [SourceGroup(external_id=f"id-g{i}", ref=ref, dn=ref, name=f"g{i}",
                          members=list(refs))
              for i, (ref, refs) in enumerate(zip(GROUP_REFS, members, strict=True))]
    index = SourceIndex.build(users, groups)
    for pos, refs in enumerate(members):
        assert as_lists(index.members[pos]) == plain_resolution(index, refs)


def snapshot_of(index: SourceIndex) -> list[object]:
    """Everything the engine reads of an index, with positions turned into external ids."""
    def ids(res: Resolved) -> tuple[list[str], list[str], list[str]]:
        return ([index.users[p].external_id for p in res.users],
                [index.groups[p].external_id for p in res.groups], list(res.dangling))

    refs = USER_REFS + GROUP_REFS + OTHER_REFS
    return [[(u.external_id, u.user_name) for u in index.users],
            [g.external_id for g in index.groups],
            [ids(res) for res in index.members], [ids(res) for res in index.owners],
            [index.lookup(ref)[0] for ref in refs],
            [(kind, (index.users if kind == "user" else index.groups)[pos].external_id)
             for kind, pos in map(index.lookup, refs) if kind is not None],
            [index.find_group(name) for name in ("g0", "g1", "g2")]]


@given(members=member_lists, dropped_users=st.sets(st.integers(0, 6)),
       dropped_groups=st.sets(st.integers(0, 3)))
# the first of two users with one ref and name dropped: the second is found instead
@example(members=[[USER_REFS[0]], [], []], dropped_users={0}, dropped_groups=set())
# the first of two groups with one ref and name dropped
@example(members=[[GROUP_REFS[0]], [USER_REFS[1]], []], dropped_users=set(),
         dropped_groups={0})
def test_dropping_entries_equals_never_adding_them(members: list[list[str]],
                                                   dropped_users: set[int],
                                                   dropped_groups: set[int]) -> None:
    def users() -> list[SourceUser]:
        # u0 twice (two ids, one ref and user name), as a deleted and re-created entry
        return [SourceUser(external_id="id-u0-old", ref=USER_REFS[0], user_name="u0"),
                *(SourceUser(external_id=f"id-u{i}", ref=ref, user_name=f"u{i}")
                  for i, ref in enumerate(USER_REFS))]

    def groups() -> list[SourceGroup]:
        made = [SourceGroup(external_id="id-g0-old", ref=GROUP_REFS[0], dn=GROUP_REFS[0],
                            name="g0", members=[USER_REFS[2]], owners=[USER_REFS[3]])]
        made += [SourceGroup(external_id=f"id-g{i}", ref=ref, dn=ref, name=f"g{i}",
                             members=list(refs), owners=refs[:1])
                 for i, (ref, refs) in enumerate(zip(GROUP_REFS, members, strict=True))]
        return made

    gone_users = {u.external_id for i, u in enumerate(users()) if i in dropped_users}
    gone_groups = {g.external_id for i, g in enumerate(groups()) if i in dropped_groups}
    index = SourceIndex()
    for user in users():
        index.add_user(user)
    for group in groups():
        index.add_group(group)
    index.drop(gone_users, gone_groups)
    index.resolve()
    never = SourceIndex.build([u for u in users() if u.external_id not in gone_users],
                              [g for g in groups() if g.external_id not in gone_groups])
    assert snapshot_of(index) == snapshot_of(never)


@given(members=member_lists, odd_user_ref=st.booleans())
def test_a_saved_index_reads_back_as_it_was(members: list[list[str]],
                                            odd_user_ref: bool) -> None:
    def users() -> list[SourceUser]:
        made = [SourceUser(external_id=f"id-u{i}", ref=ref, user_name=f"u{i}",
                           email=f"u{i}@x.org" if i % 2 else None, display_name="Zoë",
                           disabled=i == 1, external=i == 2)
                for i, ref in enumerate(USER_REFS)]
        if odd_user_ref:
            made.append(SourceUser(external_id="id-odd", ref=OTHER_REFS[1], user_name="odd"))
        return made

    def groups() -> list[SourceGroup]:
        return [SourceGroup(external_id=f"id-g{i}", ref=ref, dn=ref.upper(), name=f"g{i}",
                            description="d", attributes={"owner": refs[:2]},
                            members=list(refs), owners=refs[1:2])
                for i, (ref, refs) in enumerate(zip(GROUP_REFS, members, strict=True))]

    built = SourceIndex.build(users(), groups())
    back = SourceIndex.from_saved(built.saved())
    assert back is not None
    back.resolve()
    assert snapshot_of(back) == snapshot_of(built)
    assert back.users == built.users and back.groups == built.groups
    # more can be added to it, and dropped from it, before it is resolved
    again = SourceIndex.from_saved(built.saved())
    assert again is not None
    again.drop({"id-u0"}, {"id-g0"})
    again.add_user(SourceUser(external_id="id-new", ref="uid=new,dc=x", user_name="new"))
    again.add_group(SourceGroup(external_id="id-g9", ref="cn=g9,dc=x", dn="cn=g9,dc=x",
                                name="g9", members=[USER_REFS[0], "uid=new,dc=x"]))
    again.resolve()
    fresh = SourceIndex.build(
        [*(u for u in users() if u.external_id != "id-u0"),
         SourceUser(external_id="id-new", ref="uid=new,dc=x", user_name="new")],
        [*(g for g in groups() if g.external_id != "id-g0"),
         SourceGroup(external_id="id-g9", ref="cn=g9,dc=x", dn="cn=g9,dc=x", name="g9",
                     members=[USER_REFS[0], "uid=new,dc=x"])])
    assert snapshot_of(again) == snapshot_of(fresh)


def test_a_saved_index_of_another_format_or_damaged_is_not_read() -> None:
    data = SourceIndex.build([SourceUser("id", "uid=a,dc=x", "a")], []).saved()
    header, _, body = data.partition(b"\n")
    assert SourceIndex.from_saved(data) is not None
    assert SourceIndex.from_saved(header.replace(b"index 3", b"index 2") + b"\n" + body) \
        is None
    assert SourceIndex.from_saved(header.replace(b" 3.", b" 2.") + b"\n" + body) is None
    assert SourceIndex.from_saved(header + b"\n" + body[:-5]) is None  # cut short
    assert SourceIndex.from_saved(header + b"\n" + marshal.dumps((1, 2))) is None
