"""``syncd groups``, ``syncd members`` and ``syncd users``: the admin commands."""

from __future__ import annotations

from collections.abc import Callable

import click

from syncd.cli.app import format_option, get_app, print_json, print_table
from syncd.store import names

Callback = Callable[[click.Context, click.Parameter, str | None], str | None]


def checked(what: str, check: Callable[[str, str], str]) -> Callback:
    """A click callback that checks a value the command will write with a rule of
    ``syncd.store.names``: a bad one is one line and exit 2, before the store is opened."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        return None if value is None else check(what, value)

    return callback


# Names a command only looks up take any text: a bad one just names no group or user.
org_option = click.option("--organisation", default=None,
                          help="the group's organisation, where a name is in several")


@click.group()
def groups() -> None:
    """List, show, create and delete groups."""


@groups.command("list")
@format_option
def groups_list(fmt: str) -> None:
    """All groups."""
    rows = get_app().admin(create=False).list_groups()
    if fmt == "json":
        print_json([{k: r[k] for k in ("id", "name", "members", "managed", "source",
                                       "organisation")} for r in rows])
        return
    print_table(None, ["name", "organisation", "members", "kind", "managed", "source", "id"],
                [[r["name"] + (" (archived)" if r["archived"] else ""), r["organisation"],
                  r["members"], r["kind"], "yes" if r["managed"] else "no", r["source"],
                  r["id"]] for r in rows])


@groups.command("show")
@click.argument("name")
@org_option
@format_option
def groups_show(name: str, organisation: str | None, fmt: str) -> None:
    """One group with its members."""
    g = get_app().admin(create=False).show_group(name, organisation)
    if fmt == "json":
        print_json(g)
        return
    click.echo(f"{g['name']}  ({g['kind']}, organisation {g['organisation']})")
    click.echo(f"  id:          {g['id']}")
    if g["description"]:
        click.echo(f"  description: {g['description']}")
    managed = f"yes, by {g['source']} rule {g['rule']}" if g["managed"] else "no (manual)"
    click.echo(f"  managed:     {managed}")
    if g["archived"]:
        click.echo("  archived:    yes")
    click.echo(f"  members:     {len(g['members'])}")
    if g["members"]:
        print_table(None, ["user", "email", "role", "status", "origin", "external"],
                    [[m["user"], m["email"], m["role"], m["status"], m["origin"],
                      "yes" if m["external"] else "no"] for m in g["members"]])


@groups.command("create")
@click.argument("name", callback=checked("group name", names.check_name))
@click.option("--description", default="", help="the group's description",
              callback=checked("description", names.check_description))
@click.option("--kind", type=click.Choice(["standard", "open"]), default="standard",
              show_default=True)
@click.option("--organisation", default="default", show_default=True,
              callback=checked("organisation", names.check_name))
@click.option("--icon", default=None, help="icon URL or name",
              callback=checked("icon", names.check_icon))
@format_option
def groups_create(name: str, description: str, kind: str, organisation: str,
                  icon: str | None, fmt: str) -> None:
    """Create a local group by hand."""
    g = get_app().admin().create_group(name, description, kind, organisation, icon)
    if fmt == "json":
        print_json(g)
    else:
        click.echo(f"created group {names.shown(name)} ({g['id']})")


@groups.command("delete")
@click.argument("name")
@org_option
def groups_delete(name: str, organisation: str | None) -> None:
    """Delete a group; its users stay."""
    get_app().admin(create=False).delete_group(name, organisation)
    click.echo(f"deleted group {names.shown(name)}")


@click.group()
def members() -> None:
    """Add and remove members by hand, and change their roles."""


@members.command("add")
@click.argument("group")
@click.argument("user", callback=checked("user name", names.check_name))
@click.option("--role", default="member", show_default=True)
@click.option("--email", default=None, help="email of a user created by this command",
              callback=checked("email", names.check_email))
@org_option
def members_add(group: str, user: str, role: str, email: str | None,
                organisation: str | None) -> None:
    """Add USER to GROUP (creating the user if new)."""
    get_app().admin().add_member(group, user, role, email, organisation)
    click.echo(f"added {names.shown(user)} to {names.shown(group)} as {role}")


@members.command("remove")
@click.argument("group")
@click.argument("user")
@org_option
def members_remove(group: str, user: str, organisation: str | None) -> None:
    """Remove USER from GROUP."""
    get_app().admin(create=False).remove_member(group, user, organisation)
    click.echo(f"removed {names.shown(user)} from {names.shown(group)}")


@members.command("set-role")
@click.argument("group")
@click.argument("user")
@click.argument("role")
@org_option
def members_set_role(group: str, user: str, role: str, organisation: str | None) -> None:
    """Give USER the role ROLE in GROUP."""
    get_app().admin(create=False).set_role(group, user, role, organisation)
    click.echo(f"{names.shown(user)} is now {role} in {names.shown(group)}")


@click.group()
def users() -> None:
    """List and show users."""


@users.command("list")
@format_option
def users_list(fmt: str) -> None:
    """All users."""
    rows = get_app().admin(create=False).list_users()
    if fmt == "json":
        print_json(rows)
        return
    print_table(None, ["user", "email", "display name", "external", "status", "groups"],
                [[r["user"], r["email"], r["display_name"], "yes" if r["external"] else "no",
                  r["status"], r["groups"]] for r in rows])


@users.command("show")
@click.argument("user")
@format_option
def users_show(user: str, fmt: str) -> None:
    """One user with their groups."""
    u = get_app().admin(create=False).show_user(user)
    if fmt == "json":
        print_json(u)
        return
    click.echo(f"{u['user']}  ({u['status']}{', external' if u['external'] else ''})")
    click.echo(f"  id:      {u['id']}")
    click.echo(f"  email:   {u['email'] or ''}")
    click.echo(f"  name:    {u['display_name'] or ''}")
    for source, ext in u["external_ids"].items():
        click.echo(f"  {source}: {ext}")
    if u["groups"]:
        print_table(None, ["group", "organisation", "role", "status", "origin"],
                    [[g["group"], g["organisation"], g["role"], g["status"], g["origin"]]
                     for g in u["groups"]])
