"""`odin projects ls|show|create|rm|members|add-member|rm-member|use`: projects and who is in them.

Everyone is in `default` with their global role; other projects need a membership (admins see all).
`use` makes a project the default of later commands (`--project` and `ODIN_PROJECT` still win).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from grpc import aio

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.cli.output import message_dict, print_json, run_reporting_errors, short_time, table
from odin.client import ServiceAddresses
from odin.client.channel import call_metadata, open_channel
from odin.client.login import current_token, session_path
from odin.client.paging import collect_pages
from odin.client.project import current_project, use_project

ROLES = {"viewer": pb.User.ROLE_VIEWER, "user": pb.User.ROLE_USER, "admin": pb.User.ROLE_ADMIN}
T = TypeVar("T")


class ProjectsCli:
    """An AuthService stub that sends the session's token (renewed when refused as revoked or expired)."""

    def __init__(self, args: argparse.Namespace) -> None:
        addresses = ServiceAddresses.from_environment(args.address, args.state_dir)
        self.suite_state_dir = addresses.suite_state_dir()
        self.channel: aio.Channel = open_channel(addresses.address("auth"), session_path(self.suite_state_dir))
        self.stub = pb_grpc.AuthServiceStub(self.channel)

    async def call(self, rpc: Callable[..., Awaitable[T]], request: Any, timeout: float = 10) -> T:
        token = await current_token(self.suite_state_dir)
        return await rpc(request, metadata=call_metadata(token), timeout=timeout)


Action = Callable[[argparse.Namespace, ProjectsCli], Awaitable[int]]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds `odin projects` to `odin`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", help="auth service or gateway address (default $ODIN_ADDRESS, else odin dev)")
    common.add_argument("--state-dir", type=Path, help="the local suite's state directory (as for `odin dev`)")
    common.add_argument("--json", action="store_true", help="print JSON")
    projects = commands.add_parser("projects", help="projects and their members").add_subparsers(
        dest="projects_command", metavar="ACTION", required=True)
    projects.add_parser("ls", parents=[common], help="the projects you are in (admins: all)").set_defaults(
        func=_run(_ls))
    show = projects.add_parser("show", parents=[common], help="one project")
    show.add_argument("project", nargs="?", help="default: the current project")
    show.set_defaults(func=_run(_show))
    create = projects.add_parser("create", parents=[common], help="create a project (admins)")
    create.add_argument("project", help="id: a-z, 0-9, '-', starting with a letter")
    create.add_argument("--display-name", default="")
    create.add_argument("--description", default="")
    create.set_defaults(func=_run(_create))
    remove = projects.add_parser("rm", parents=[common], help="delete a project and its memberships (admins)")
    remove.add_argument("project")
    remove.set_defaults(func=_run(_rm))
    members = projects.add_parser("members", parents=[common], help="who is in a project")
    members.add_argument("project", nargs="?", help="default: the current project")
    members.set_defaults(func=_run(_members))
    add = projects.add_parser("add-member", parents=[common], help="add a member or change their role "
                                                                   "(project admins)")
    add.add_argument("project")
    add.add_argument("username")
    add.add_argument("--role", choices=sorted(ROLES), default="user")
    add.set_defaults(func=_run(_add_member))
    rm_member = projects.add_parser("rm-member", parents=[common], help="remove a member (project admins)")
    rm_member.add_argument("project")
    rm_member.add_argument("username")
    rm_member.set_defaults(func=_run(_rm_member))
    use = projects.add_parser("use", help="make a project the default of later commands ('' or default: reset)")
    use.add_argument("project")
    use.set_defaults(func=_use)


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        async def go() -> int:
            cli = ProjectsCli(args)
            async with cli.channel:
                return await action(args, cli)

        return run_reporting_errors(go(), args.json)

    return handler


def _name(project: str | None) -> str:
    return "projects/" + (current_project(project) or "default")


async def _ls(args: argparse.Namespace, cli: ProjectsCli) -> int:
    async def page(token: str) -> pb.ListProjectsResponse:
        reply: pb.ListProjectsResponse = await cli.call(cli.stub.ListProjects,
                                                        pb.ListProjectsRequest(page_size=1000, page_token=token))
        return reply

    found: list[pb.Project] = await collect_pages(page, "projects")
    if args.json:
        print_json({"projects": [message_dict(p) for p in found]})
        return 0
    current = _name(None)
    rows = [["*" if p.name == current else "", p.name.removeprefix("projects/"), _role(p.caller_role),
             p.display_name, short_time(p.create_time)] for p in found]
    print("\n".join(table(rows, ["", "PROJECT", "YOUR ROLE", "NAME", "CREATED"])))
    return 0


async def _show(args: argparse.Namespace, cli: ProjectsCli) -> int:
    project = (await cli.call(cli.stub.GetProject, pb.GetProjectRequest(name=_name(args.project)))).project
    if args.json:
        print_json(message_dict(project))
        return 0
    print(f"{project.name}\n  name:        {project.display_name or '-'}\n  description: {project.description or '-'}"
          f"\n  your role:   {_role(project.caller_role)}\n  created:     {short_time(project.create_time)}")
    return 0


async def _create(args: argparse.Namespace, cli: ProjectsCli) -> int:
    request = pb.CreateProjectRequest(project_id=args.project.removeprefix("projects/"), project=pb.Project(
        display_name=args.display_name, description=args.description))
    created = (await cli.call(cli.stub.CreateProject, request)).project
    _print(args, message_dict(created), f"created {created.name}")
    return 0


async def _rm(args: argparse.Namespace, cli: ProjectsCli) -> int:
    await cli.call(cli.stub.DeleteProject, pb.DeleteProjectRequest(name=_name(args.project)))
    _print(args, {"deleted": _name(args.project)}, f"deleted {_name(args.project)}")
    return 0


async def _members(args: argparse.Namespace, cli: ProjectsCli) -> int:
    parent = _name(args.project)

    async def page(token: str) -> pb.ListProjectMembersResponse:
        reply: pb.ListProjectMembersResponse = await cli.call(
            cli.stub.ListProjectMembers, pb.ListProjectMembersRequest(parent=parent, page_size=1000, page_token=token))
        return reply

    found: list[pb.ProjectMember] = await collect_pages(page, "members")
    if args.json:
        print_json({"members": [message_dict(m) for m in found]})
        return 0
    print("\n".join(table([[m.user.removeprefix("users/"), _role(m.role)] for m in found], ["USER", "ROLE"])))
    return 0


async def _add_member(args: argparse.Namespace, cli: ProjectsCli) -> int:
    member = pb.ProjectMember(user=f"users/{args.username.removeprefix('users/')}", role=ROLES[args.role])
    stored = (await cli.call(cli.stub.SetProjectMember, pb.SetProjectMemberRequest(
        project=_name(args.project), member=member))).member
    _print(args, message_dict(stored), f"{stored.user} is {args.role} in {_name(args.project)}")
    return 0


async def _rm_member(args: argparse.Namespace, cli: ProjectsCli) -> int:
    name = f"{_name(args.project)}/members/{args.username.removeprefix('users/')}"
    await cli.call(cli.stub.RemoveProjectMember, pb.RemoveProjectMemberRequest(name=name))
    _print(args, {"removed": name}, f"removed {name}")
    return 0


def _use(args: argparse.Namespace) -> int:
    project = args.project.removeprefix("projects/")
    path = use_project("" if project == "default" else project)
    print(f"now using projects/{project or 'default'} (kept in {path})")
    return 0


def _print(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print_json(document) if args.json else print(text)


def _role(role: int) -> str:
    return {int(v): k for k, v in ROLES.items()}.get(role, "-")


