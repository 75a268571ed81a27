"""`odin pipelines ...`: the git-backed repository of pipeline definitions.

    odin pipelines ls [--prefix P] [--revision REV]      list pipelines
    odin pipelines show NAME [--revision REV] [--file F] a pipeline's files (or one file's text)
    odin pipelines history NAME                          the commits that changed it
    odin pipelines push DIR [--name NAME] [-m MSG]       create, or update to match DIR, in one commit
    odin pipelines create NAME DIR / update NAME DIR     the same, insisting it is new / exists
    odin pipelines pull NAME DIR [--revision REV]        write its files into DIR
    odin pipelines rm NAME                               delete it (history stays)
    odin pipelines validate NAME|DIR [--x:KEY VALUE]     check it with the scheduler's validator
    odin pipelines render NAME [--x:KEY VALUE] [--out D] render its templates
    odin pipelines sync / repo                           pull+push the upstream now / show its state

Every command takes `--address`, `--json` and `--project P` (default: $ODIN_PROJECT, else the one
`odin projects use` chose, else the default project). NAME is a pipeline id in that project, or a
full name: `projects/P/pipelines/ID`, or `pipelines/ID` for the default project. `sync` and `repo`
span every project and need an admin. Exit codes: 0 success, 1 a failed call or an invalid
pipeline, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from odin.cli.output import message_dict, print_json, run_reporting_errors, short_time, table
from odin.cli.overrides import accept_overrides
from odin.client import InvalidArgument, NotFound, ServiceAddresses, from_rpc_error
from odin.client.channel import call_metadata, open_channel
from odin.client.login import current_token, session_path
from odin.client.paging import collect_pages
from odin.client.project import current_project
from odin.pipeline_spec.directory import companion_files
from odin.pipelines.v1 import pipelines_pb2 as pb
from odin.pipelines.v1 import pipelines_pb2_grpc

NAME_PREFIX = "pipelines/"
PROJECT_PREFIX = "projects/"
CALL_TIMEOUT = 30.0


class Api:
    """The pipelines service with the caller's token and a deadline on every call; errors become OdinError."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None, address: str, project: str = "") -> None:
        self.stub = pipelines_pb2_grpc.PipelinesServiceStub(channel)
        self.metadata = call_metadata(token)
        self.address = address
        # The project bare pipeline ids belong to; '' lets the server use the default project.
        self.project = project

    def resource(self, name: str) -> str:
        """The full name of NAME: as given when it already is one, else the id in `project`."""
        if name.startswith((PROJECT_PREFIX, NAME_PREFIX)):
            return name
        return f"{PROJECT_PREFIX}{self.project}/{NAME_PREFIX}{name}" if self.project else f"{NAME_PREFIX}{name}"

    def split(self, name: str) -> tuple[str, str]:
        """(project, pipeline id) of NAME; the project is '' for the server's default."""
        full = self.resource(name)
        if full.startswith(PROJECT_PREFIX):
            project, _, rest = full[len(PROJECT_PREFIX):].partition("/")
            return project, rest.removeprefix(NAME_PREFIX)
        return "", full.removeprefix(NAME_PREFIX)

    async def __call__(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, method)(request, metadata=self.metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None


async def connect(address: str | None, state_dir: Path | None) -> tuple[grpc.aio.Channel, str | None, str]:
    """Where the pipelines service is and which token to send (`--address`/`ODIN_ADDRESS`/the local suite);
    a login session's token is renewed first when it is about to expire."""
    addresses = ServiceAddresses.from_environment(address, state_dir=state_dir)
    target = addresses.address("pipelines")
    state = addresses.suite_state_dir()
    return open_channel(target, session_path(state)), await current_token(state), target


Handler = Callable[[argparse.Namespace, Api], Awaitable[int]]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds `odin pipelines ...` to `odin`."""
    group = commands.add_parser("pipelines", help="the repository of pipeline definitions",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(dest="pipelines_command", metavar="COMMAND")
    common = _common_options()

    def add(names: list[str], help_text: str, handler: Handler) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(names[0], aliases=names[1:], parents=[common],
                                                         help=help_text, description=help_text)
        parser.set_defaults(func=_command(handler))
        return parser

    listing = add(["ls", "list"], "list pipelines by name", _list)
    listing.add_argument("--prefix", default="", help="only names starting with this")
    listing.add_argument("--revision", default="", help="branch, tag or commit (default: the branch head)")
    listing.add_argument("--limit", type=int, default=0, help="at most N pipelines (default: all)")
    show = add(["show"], "a pipeline's revision and files", _show)
    _name_and_revision(show)
    show.add_argument("--file", metavar="PATH", help="print only this file's text")
    history = add(["history"], "the commits that changed a pipeline, newest first", _history)
    history.add_argument("name", metavar="NAME")
    history.add_argument("--limit", type=int, default=0, help="at most N commits (default: all)")
    push = add(["push"], "create a pipeline from DIR, or update it to match DIR, in one commit", _push)
    push.add_argument("directory", metavar="DIR", type=Path)
    push.add_argument("--name", help="the pipeline (default: DIR's name)")
    _write_options(push)
    for names, help_text, handler in ((["create"], "create a pipeline from DIR", _create),
                                      (["update", "edit"], "make a pipeline match DIR", _update)):
        parser = add(names, help_text, handler)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("directory", metavar="DIR", type=Path)
        _write_options(parser)
    pull = add(["pull"], "write a pipeline's files into DIR", _pull)
    _name_and_revision(pull)
    pull.add_argument("directory", metavar="DIR", type=Path)
    pull.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    remove = add(["rm", "delete"], "delete a pipeline (its history stays in the repository)", _delete)
    remove.add_argument("name", metavar="NAME")
    _write_options(remove)
    validate = add(["validate"], "check a pipeline (a name, or a local DIR) without running it", _validate)
    accept_overrides(validate)
    _name_and_revision(validate, "NAME or DIR")
    render = add(["render"], "render a pipeline's templates with --x:KEY VALUE parameters", _render)
    accept_overrides(render)
    _name_and_revision(render)
    render.add_argument("--out", type=Path, metavar="DIR", help="write the files into DIR instead of printing")
    add(["sync"], "pull from and push to the upstream remote now", _sync)
    add(["repo"], "the repository's head and its state against the upstream", _repo)

    def usage(_: argparse.Namespace) -> int:
        group.print_help()
        return 2

    group.set_defaults(func=usage)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", metavar="HOST:PORT",
                        help="the gateway or pipelines service (default: $ODIN_ADDRESS, else the local suite)")
    common.add_argument("--state-dir", type=Path, help="the local suite's state directory (as for `odin dev`)")
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("--project", metavar="PROJECT",
                        help="the project of the pipelines (default: $ODIN_PROJECT, else `odin projects use`, "
                             "else the default project)")
    return common


def _name_and_revision(parser: argparse.ArgumentParser, metavar: str = "NAME") -> None:
    parser.add_argument("name", metavar=metavar)
    parser.add_argument("--revision", default="", help="branch, tag or commit (default: the branch head)")


def _write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--message", "-m", default="", help="the commit message")
    parser.add_argument("--expected-revision", default="",
                        help="the branch head your edit started from (default: the head read just before)")


def _command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Runs `handler` with a connection; errors become a message and exit code 1, never a traceback."""

    async def with_api(args: argparse.Namespace) -> int:
        channel, token, address = await connect(args.address, args.state_dir)
        async with channel:
            return await handler(args, Api(channel, token, address, current_project(args.project)))

    return lambda args: run_reporting_errors(with_api(args), args.json)


# -- reading ------------------------------------------------------------------------------------------


async def _list(args: argparse.Namespace, api: Api) -> int:
    pipelines: list[pb.Pipeline] = await collect_pages(lambda token: api("ListPipelines", pb.ListPipelinesRequest(
        prefix=args.prefix, revision=args.revision, page_size=500, page_token=token, project=api.project)),
        "pipelines", args.limit)
    if args.json:
        print_json(pb.ListPipelinesResponse(pipelines=pipelines))
        return 0
    rows = [[_short(p.name), p.revision.commit[:12], p.revision.author_name, short_time(p.revision.commit_time),
             "template" if p.templated else (p.display_name or "-")] for p in pipelines]
    print("\n".join(table(rows, ["NAME", "REVISION", "AUTHOR", "CHANGED", "TITLE"])))
    return 0


async def _show(args: argparse.Namespace, api: Api) -> int:
    found = await _get(api, args.name, args.revision)
    if args.file:
        files = {f.path: f.content for f in found.files}
        if args.file not in files:
            raise NotFound(f"{_short(found.name)} has no file {args.file!r}", code="NOT_FOUND")
        sys.stdout.write(files[args.file])
        return 0
    if args.json:
        print_json(found)
        return 0
    print(f"{_short(found.name)}{'  (template)' if found.templated else ''}")
    revision = found.revision
    print(f"  revision  {revision.commit}  {revision.author_name}  {short_time(revision.commit_time)}")
    print(f"            {found.revision.message.splitlines()[0] if found.revision.message else ''}")
    print(f"  branch    {found.etag}")
    for file in found.files:
        print(f"  {len(file.content.encode()):>9}  {file.path}")
    return 0


async def _history(args: argparse.Namespace, api: Api) -> int:
    revisions: list[pb.Revision] = await collect_pages(lambda token: api(
        "ListPipelineRevisions", pb.ListPipelineRevisionsRequest(name=api.resource(args.name), page_size=500,
                                                                 page_token=token)), "revisions", args.limit)
    if args.json:
        print_json(pb.ListPipelineRevisionsResponse(revisions=revisions))
        return 0
    rows = [[r.commit[:12], short_time(r.commit_time), r.author_name, (r.message.splitlines() or [""])[0]]
            for r in revisions]
    print("\n".join(table(rows, ["COMMIT", "WHEN", "AUTHOR", "MESSAGE"])))
    return 0


async def _pull(args: argparse.Namespace, api: Api) -> int:
    found = await _get(api, args.name, args.revision)
    target: Path = args.directory
    _check_empty(target, args.force)
    written = [_write_file(target, f.path, f.content) for f in found.files]
    if args.json:
        print_json({"name": found.name, "revision": found.revision.commit, "files": [str(p) for p in written]})
    else:
        print(f"wrote {len(written)} file(s) of {_short(found.name)} at {found.revision.commit[:12]} to {target}")
    return 0


async def _get(api: Api, name: str, revision: str) -> pb.Pipeline:
    reply = await api("GetPipeline", pb.GetPipelineRequest(name=api.resource(name), revision=revision))
    pipeline: pb.Pipeline = reply.pipeline
    return pipeline


# -- writing ------------------------------------------------------------------------------------------


async def _push(args: argparse.Namespace, api: Api) -> int:
    name = args.name or args.directory.resolve().name
    return await _write(args, api, name, must_exist=None)


async def _create(args: argparse.Namespace, api: Api) -> int:
    return await _write(args, api, args.name, must_exist=False)


async def _update(args: argparse.Namespace, api: Api) -> int:
    return await _write(args, api, args.name, must_exist=True)


async def _write(args: argparse.Namespace, api: Api, name: str, must_exist: bool | None) -> int:
    local = read_directory(args.directory)
    current = None if must_exist is False else await _existing(api, name, must_exist)
    if current is None:
        project, pipeline_id = api.split(name)
        reply = await api("CreatePipeline", pb.CreatePipelineRequest(
            pipeline_id=pipeline_id, project=project, message=args.message,
            pipeline=pb.Pipeline(files=[pb.PipelineFile(path=p, content=t) for p, t in sorted(local.items())])))
        return _print_written(reply.pipeline, "created", args.json)
    remote = {f.path: f.content for f in current.files}
    reply = await api("UpdatePipeline", pb.UpdatePipelineRequest(
        name=current.name, expected_revision=args.expected_revision or current.etag, message=args.message,
        upsert_files=[pb.PipelineFile(path=p, content=t) for p, t in sorted(local.items()) if remote.get(p) != t],
        delete_paths=sorted(set(remote) - set(local))))
    return _print_written(reply.pipeline, "updated", args.json)


async def _existing(api: Api, name: str, must_exist: bool | None) -> pb.Pipeline | None:
    try:
        return await _get(api, name, "")
    except NotFound as error:
        if must_exist or error.reason != "PIPELINE_NOT_FOUND":
            raise
        return None


def _print_written(pipeline: pb.Pipeline, verb: str, as_json: bool) -> int:
    if as_json:
        print_json(pb.Pipeline(name=pipeline.name, revision=pipeline.revision, etag=pipeline.etag,
                               templated=pipeline.templated, display_name=pipeline.display_name))
    else:
        print(f"{verb} {_short(pipeline.name)} at {pipeline.revision.commit[:12]}")
    return 0


async def _delete(args: argparse.Namespace, api: Api) -> int:
    expected = args.expected_revision or (await _get(api, args.name, "")).etag
    reply = await api("DeletePipeline", pb.DeletePipelineRequest(
        name=api.resource(args.name), expected_revision=expected, message=args.message))
    if args.json:
        print_json(reply)
    else:
        print(f"deleted {_short(args.name)} in {reply.revision.commit[:12]}")
    return 0


# -- checking and rendering ---------------------------------------------------------------------------


async def _validate(args: argparse.Namespace, api: Api) -> int:
    request = pb.ValidatePipelineRequest(revision=args.revision, parameters=_struct(args.parameters))
    local = _local_pipeline(args.name)
    if local is not None:
        request.pipeline.files.extend(pb.PipelineFile(path=p, content=t) for p, t in sorted(local.items()))
    else:
        request.name = api.resource(args.name)
    verdict = await api("ValidatePipeline", request)
    if args.json:
        print_json({"valid": not verdict.violations, **message_dict(verdict)})
    elif verdict.violations:
        print("\n".join(f"{v.field}: {v.description}" if v.field else v.description for v in verdict.violations))
    else:
        print(f"valid; tasks run in the order: {', '.join(verdict.task_order)}")
    return 1 if verdict.violations else 0


async def _render(args: argparse.Namespace, api: Api) -> int:
    reply = await api("RenderPipeline", pb.RenderPipelineRequest(
        name=api.resource(args.name), revision=args.revision, parameters=_struct(args.parameters)))
    if args.out:
        for file in reply.files:
            _write_file(args.out, file.path, file.content)
    if args.json:
        print_json(reply)
    elif not args.out:
        for file in reply.files:
            print(f"--- {file.path}")
            sys.stdout.write(file.content if file.content.endswith("\n") else file.content + "\n")
    else:
        print(f"rendered {len(reply.files)} file(s) of {reply.revision.commit[:12]} into {args.out}")
    return 0


async def _sync(args: argparse.Namespace, api: Api) -> int:
    return _print_repository((await api("SyncRepository", pb.SyncRepositoryRequest())).repository, args.json)


async def _repo(args: argparse.Namespace, api: Api) -> int:
    return _print_repository((await api("GetRepository", pb.GetRepositoryRequest())).repository, args.json)


def _print_repository(repository: pb.Repository, as_json: bool) -> int:
    if as_json:
        print_json(repository)
    else:
        state = pb.Repository.SyncState.Name(repository.sync_state).removeprefix("SYNC_STATE_")
        print(f"branch  {repository.branch} at {repository.head.commit[:12] or '(empty)'}")
        print(f"remote  {repository.remote or '-'}  {state}  {repository.sync_message}".rstrip())
    return 1 if repository.sync_state in (pb.Repository.SYNC_STATE_DIVERGED,
                                          pb.Repository.SYNC_STATE_UNREACHABLE) else 0


# -- local files --------------------------------------------------------------------------------------


def read_directory(directory: Path) -> dict[str, str]:
    """A pipeline directory's files by relative path; hidden files and caches stay behind."""
    if not directory.is_dir():
        raise InvalidArgument(f"{directory}: not a directory")
    files = {}
    for relative in companion_files(directory):
        path = directory / relative
        try:
            files[relative] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"{path}: not UTF-8 text; pipelines hold text files only") from None
    return files


def _local_pipeline(source: str) -> dict[str, str] | None:
    """The files of a local directory, or None when `source` names a repository pipeline."""
    return read_directory(Path(source)) if Path(source).is_dir() else None


def _check_empty(target: Path, force: bool) -> None:
    if target.exists() and any(target.iterdir()) and not force:
        raise InvalidArgument(f"{target} is not empty (pass --force to write into it)")


def _write_file(root: Path, relative: str, content: str) -> Path:
    """Writes under `root` only: a path that would leave it (a hostile server) is refused."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise InvalidArgument(f"refusing to write {relative!r} outside {root}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return target


def _short(name: str) -> str:
    """A pipeline's id without its project: the listing is of one project, the header says which."""
    return name.rpartition("/")[2]


def _struct(parameters: dict[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(parameters or {})
    return struct
