"""`odin login|logout|whoami`, `odin users create|list|update|delete`, `odin tokens create|list|revoke`.

`odin login` stores the session (access + refresh token, mode 0600) where every other command
finds it (see odin.client.login); commands here renew the access token when it is about to
expire. Passwords are read with a prompt or from stdin (`--password-stdin`), never from flags.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf import field_mask_pb2, timestamp_pb2
from grpc import aio

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.cli.output import message_dict, print_json, run_reporting_errors, short_time, table
from odin.client import ServiceAddresses
from odin.client.channel import call_metadata, open_channel
from odin.client.login import current_token, load_session, save_session, session_path
from odin.client.paging import collect_pages
from odin.pipeline_spec.durations import parse_duration
from odin.runtime.timestamps import from_seconds

ROLES = {"viewer": pb.User.ROLE_VIEWER, "user": pb.User.ROLE_USER, "admin": pb.User.ROLE_ADMIN}
Action = Callable[[argparse.Namespace, "AuthCli"], Awaitable[int]]
T = TypeVar("T")


class AuthCli:
    """An AuthService stub with the stored token and the session file's location."""

    def __init__(self, args: argparse.Namespace) -> None:
        addresses = ServiceAddresses.from_environment(args.address)
        self.address = addresses.address("auth")
        self.session = session_path(addresses.suite_state_dir())
        self.suite_state_dir = addresses.suite_state_dir()
        self.channel: aio.Channel = open_channel(self.address, self.session)
        self.stub = pb_grpc.AuthServiceStub(self.channel)

    async def call(self, rpc: Callable[..., Awaitable[T]], request: Any, timeout: float = 10) -> T:
        """`rpc(request)` with the session's token, renewed once if a service refused it as revoked or expired."""
        token = await current_token(self.suite_state_dir)
        return await rpc(request, metadata=call_metadata(token), timeout=timeout)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds this module's commands to `odin`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", help="auth service or gateway address (default $ODIN_ADDRESS, else odin dev)")
    common.add_argument("--json", action="store_true", help="print JSON")

    login = commands.add_parser("login", parents=[common], help="log in and keep the session for other commands")
    login.add_argument("--username", "-u", help="default: prompt")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.set_defaults(func=_run(_login))
    commands.add_parser("logout", parents=[common], help="end the stored session").set_defaults(func=_run(_logout))
    commands.add_parser("whoami", parents=[common], help="who the stored session is").set_defaults(func=_run(_whoami))
    _add_users(commands, common)
    _add_tokens(commands, common)


def _add_users(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    users = commands.add_parser("users", help="manage users (admins)").add_subparsers(dest="users_command",
                                                                                      metavar="ACTION", required=True)
    create = users.add_parser("create", parents=[common], help="create a user (prompts for the password)")
    create.add_argument("username")
    role = create.add_mutually_exclusive_group()
    role.add_argument("--role", choices=sorted(ROLES), default="user")
    role.add_argument("--admin", action="store_const", dest="role", const="admin", help="same as --role admin")
    create.add_argument("--display-name", default="")
    create.add_argument("--email", default="")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create.set_defaults(func=_run(_users_create))
    listing = users.add_parser("list", parents=[common], help="list users")
    listing.set_defaults(func=_run(_users_list))
    update = users.add_parser("update", parents=[common], help="change a user's profile, role or status")
    update.add_argument("username")
    update.add_argument("--role", choices=sorted(ROLES))
    update.add_argument("--admin", action="store_const", dest="role", const="admin", help="same as --role admin")
    update.add_argument("--display-name")
    update.add_argument("--email")
    status = update.add_mutually_exclusive_group()
    status.add_argument("--disable", action="store_const", const=True, dest="disabled")
    status.add_argument("--enable", action="store_const", const=False, dest="disabled")
    update.set_defaults(func=_run(_users_update))
    delete = users.add_parser("delete", parents=[common], help="delete a user with their sessions and tokens")
    delete.add_argument("username")
    delete.set_defaults(func=_run(_users_delete))


def _add_tokens(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    tokens = commands.add_parser("tokens", help="API tokens for scripts and CI").add_subparsers(
        dest="tokens_command", metavar="ACTION", required=True)
    owner = argparse.ArgumentParser(add_help=False)
    owner.add_argument("--user", default="me", help="whose tokens (admins only; default: yours)")
    create = tokens.add_parser("create", parents=[common, owner], help="create a token; the secret is shown once")
    create.add_argument("--name", default="", help="what the token is for")
    create.add_argument("--expires-in", help="e.g. 30d, 12h (default: never)")
    create.set_defaults(func=_run(_tokens_create))
    tokens.add_parser("list", parents=[common, owner], help="list tokens").set_defaults(func=_run(_tokens_list))
    revoke = tokens.add_parser("revoke", parents=[common], help="revoke a token at once")
    revoke.add_argument("name", help="users/<user>/apiTokens/<id>")
    revoke.set_defaults(func=_run(_tokens_revoke))


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        async def go() -> int:
            cli = AuthCli(args)
            async with cli.channel:
                return await action(args, cli)

        return run_reporting_errors(go(), args.json)

    return handler


def _password(args: argparse.Namespace, prompt: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


async def _login(args: argparse.Namespace, cli: AuthCli) -> int:
    username = args.username or await asyncio.to_thread(input, "username: ")
    password = await asyncio.to_thread(_password, args, "password: ")
    reply = await cli.stub.Login(pb.LoginRequest(username=username, password=password), timeout=30)
    save_session(cli.session, cli.address, username, reply.tokens)
    _show(args, {"user": reply.user.name, "session": str(cli.session)},
          f"logged in as {reply.user.name} ({_role(reply.user.role)}); session in {cli.session}")
    return 0


async def _logout(args: argparse.Namespace, cli: AuthCli) -> int:
    session = load_session(cli.session)
    if session is None:
        print("not logged in")
        return 0
    # The access token rides along for gateways that want one on every call; the refresh token decides.
    await cli.stub.Logout(pb.LogoutRequest(refresh_token=str(session["refresh_token"])),
                          metadata=call_metadata(str(session.get("access_token", ""))), timeout=10)
    cli.session.unlink(missing_ok=True)
    print(f"logged out {session.get('username', '')}".rstrip())
    return 0


async def _whoami(args: argparse.Namespace, cli: AuthCli) -> int:
    user = (await cli.call(cli.stub.GetUser, pb.GetUserRequest(name="users/me"), timeout=10)).user
    _show(args, message_dict(user), f"{user.username} ({_role(user.role)})")
    return 0


async def _users_create(args: argparse.Namespace, cli: AuthCli) -> int:
    password = await asyncio.to_thread(_password, args, f"password for {args.username}: ")
    user = pb.User(username=args.username, display_name=args.display_name, email=args.email, role=ROLES[args.role])
    created = (await cli.call(cli.stub.CreateUser, pb.CreateUserRequest(user=user, password=password),
                              timeout=30)).user
    _show(args, message_dict(created), f"created {created.name} ({_role(created.role)})")
    return 0


async def _users_list(args: argparse.Namespace, cli: AuthCli) -> int:
    async def page(token: str) -> pb.ListUsersResponse:
        request = pb.ListUsersRequest(page_size=500, page_token=token)
        reply: pb.ListUsersResponse = await cli.call(cli.stub.ListUsers, request, timeout=10)
        return reply

    users: list[pb.User] = await collect_pages(page, "users")
    if args.json:
        print_json({"users": [message_dict(u) for u in users]})
        return 0
    rows = [[u.username, _role(u.role), "disabled" if u.disabled else "", u.display_name, u.email] for u in users]
    print("\n".join(table(rows, ["USERNAME", "ROLE", "STATUS", "NAME", "EMAIL"])))
    return 0


async def _users_update(args: argparse.Namespace, cli: AuthCli) -> int:
    user, paths = pb.User(name=f"users/{args.username}"), []
    for field, value in (("display_name", args.display_name), ("email", args.email), ("disabled", args.disabled)):
        if value is not None:
            setattr(user, field, value)
            paths.append(field)
    if args.role:
        user.role, paths = ROLES[args.role], [*paths, "role"]
    if not paths:
        print("odin users update: nothing to change (see --help)", file=sys.stderr)
        return 2
    updated = (await cli.call(cli.stub.UpdateUser, pb.UpdateUserRequest(user=user, update_mask=field_mask_pb2.FieldMask(
        paths=paths)), timeout=10)).user
    _show(args, message_dict(updated), f"updated {updated.name}: {', '.join(paths)}")
    return 0


async def _users_delete(args: argparse.Namespace, cli: AuthCli) -> int:
    await cli.call(cli.stub.DeleteUser, pb.DeleteUserRequest(name=f"users/{args.username}"), timeout=10)
    print(f"deleted users/{args.username}")
    return 0


async def _tokens_create(args: argparse.Namespace, cli: AuthCli) -> int:
    spec = pb.ApiToken(display_name=args.name)
    if args.expires_in:
        try:
            spec.expire_time.CopyFrom(_in(parse_duration(args.expires_in)))
        except ValueError as exc:
            print(f"odin tokens create: --expires-in {exc}", file=sys.stderr)
            return 2
    request = pb.CreateApiTokenRequest(parent=f"users/{args.user}", api_token=spec)
    created = (await cli.call(cli.stub.CreateApiToken, request, timeout=10)).api_token
    if args.json:
        print_json(message_dict(created))
        return 0
    print(f"created {created.name}\n\n{created.token}\n\nStore it now: it is not shown again.")
    return 0


async def _tokens_list(args: argparse.Namespace, cli: AuthCli) -> int:
    reply = await cli.call(cli.stub.ListApiTokens, pb.ListApiTokensRequest(parent=f"users/{args.user}", page_size=500),
                           timeout=10)
    if args.json:
        print_json({"api_tokens": [message_dict(t) for t in reply.api_tokens]})
        return 0
    rows = [[t.name, t.display_name, short_time(t.create_time), _maybe(t, "expire_time"),
             _maybe(t, "last_use_time"), "revoked" if t.HasField("revoke_time") else ""] for t in reply.api_tokens]
    print("\n".join(table(rows, ["NAME", "FOR", "CREATED", "EXPIRES", "LAST USED", "STATUS"])))
    return 0


async def _tokens_revoke(args: argparse.Namespace, cli: AuthCli) -> int:
    revoked = (await cli.call(cli.stub.RevokeApiToken, pb.RevokeApiTokenRequest(name=args.name), timeout=10)).api_token
    print(f"revoked {revoked.name}")
    return 0


def _show(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print_json(document) if args.json else print(text)


def _role(role: int) -> str:
    names: dict[int, str] = {int(v): k for k, v in ROLES.items()}
    return names.get(role, "unknown")


def _maybe(message: Any, field: str) -> str:
    return short_time(getattr(message, field)) if message.HasField(field) else "-"


def _in(seconds: float) -> timestamp_pb2.Timestamp:
    return from_seconds(time.time() + seconds)



