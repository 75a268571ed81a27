"""The pipelines repository: a bare git repository, one directory per pipeline.

Pipelines of the default project are top-level directories (as before projects existed, so an
old repository needs no move); those of project `p` are under `_projects/p/`. Every method takes
the project, and a write only ever replaces the one directory of its pipeline in its project.

Domain layer (no gRPC). Reads resolve a revision to a commit and read trees; writes build the
new trees in memory and land as exactly one commit through a compare-and-swap of the branch
ref, under an in-process lock. A writer that started from an older head gets ABORTED and
nothing changes, so two concurrent editors can never both win.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2

from odin.runtime.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from odin.runtime.projects import DEFAULT_PROJECT
from odin_pipelines import files as pipeline_files
from odin_pipelines import trees
from odin_pipelines.changes import ChangeIndex
from odin_pipelines.config import Limits
from odin_pipelines.display import DisplayNames
from odin_pipelines.identity import Author
from odin_pipelines.names import PIPELINE_ID, PipelineRef, project_directory

_HEX = re.compile(r"^[0-9a-f]{4,40}$")


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    message: str
    author_name: str
    author_email: str
    time: int  # seconds since the epoch

    @classmethod
    def of(cls, commit: pygit2.Commit) -> CommitInfo:
        return cls(str(commit.id), commit.message.rstrip("\n"), commit.author.name, commit.author.email,
                   commit.commit_time)


@dataclass(frozen=True)
class PipelineView:
    """A pipeline at one revision; `files` only when asked for."""

    pipeline_id: str
    revision: CommitInfo
    etag: str
    templated: bool
    display_name: str
    files: dict[str, str] | None = None
    project: str = DEFAULT_PROJECT

    @property
    def ref(self) -> PipelineRef:
        return PipelineRef(self.project, self.pipeline_id)


def pipeline_not_found(ref: PipelineRef) -> NotFound:
    """The one answer for a pipeline that does not exist and for one the caller may not know about."""
    return NotFound(f"pipeline {ref.name!r} does not exist", reason="PIPELINE_NOT_FOUND",
                    metadata={"pipeline": ref.name})


class PipelineRepository:
    """Every read and write of the repository goes through here."""

    def __init__(self, path: Path, branch: str, limits: Limits) -> None:
        self.path = str(path)
        self.branch = branch
        self.branch_ref = f"refs/heads/{branch}"
        self.limits = limits
        self.write_lock = threading.Lock()
        self.changes = ChangeIndex()
        self.display_names = DisplayNames()
        self._commit_infos: dict[str, CommitInfo] = {}
        self._local = threading.local()

    @classmethod
    def open_or_create(cls, path: Path, branch: str, limits: Limits) -> tuple[PipelineRepository, bool]:
        """Opens the bare repository at `path`, creating it (HEAD -> `branch`) when absent."""
        created = not (path / "HEAD").exists()
        if created:
            pygit2.init_repository(str(path), bare=True, initial_head=branch)
        else:
            pygit2.Repository(str(path))  # fails loudly when `path` is not a repository
        return cls(path, branch, limits), created

    @property
    def git(self) -> pygit2.Repository:
        """One pygit2 handle per thread: libgit2 objects must not be shared between threads."""
        repo: pygit2.Repository | None = getattr(self._local, "repo", None)
        if repo is None:
            repo = self._local.repo = pygit2.Repository(self.path)
        return repo

    # ---- revisions -------------------------------------------------------------------------

    def head(self) -> pygit2.Commit | None:
        """The branch head; None while the branch has no commit yet."""
        try:
            ref = self.git.lookup_reference(self.branch_ref)
        except KeyError:
            return None
        return trees.commit_at(self.git, ref.target)

    def head_id(self) -> str:
        head = self.head()
        return str(head.id) if head else ""

    def resolve(self, revision: str) -> pygit2.Commit | None:
        """A branch, tag or (abbreviated) commit id; empty means the branch head (None if unborn)."""
        if not revision:
            return self.head()
        for candidate in (f"refs/heads/{revision}", f"refs/tags/{revision}"):
            found = self._peel_ref(candidate)
            if found is not None:
                return found
        if _HEX.match(revision):
            try:
                commit: pygit2.Commit = self.git.revparse_single(revision).peel(pygit2.Commit)
                return commit
            except (KeyError, ValueError, pygit2.GitError):
                pass
        raise NotFound(f"revision {revision!r} does not exist", reason="REVISION_NOT_FOUND",
                       metadata={"revision": revision})

    def _peel_ref(self, name: str) -> pygit2.Commit | None:
        try:
            commit: pygit2.Commit = self.git.lookup_reference(name).peel(pygit2.Commit)
            return commit
        except (KeyError, ValueError, pygit2.GitError):
            return None

    # ---- reads -----------------------------------------------------------------------------

    def list_pipelines(self, *, prefix: str, after: str, limit: int, revision: str,
                       project: str = DEFAULT_PROJECT) -> tuple[list[PipelineView], bool]:
        """`project`'s pipelines with ids > `after` starting with `prefix`, by id; and whether more follow."""
        commit = self.resolve(revision)
        if commit is None:
            return [], False
        directory = project_directory(project)
        root = trees.directory(self.git, commit.tree, "/".join(directory))
        if root is None:
            return [], False
        chosen = []
        # PIPELINE_ID skips `_projects` (and anything else that is not a pipeline id) at the top level.
        for name in sorted(entry.name or "" for entry in root):
            if name <= after or not name.startswith(prefix) or not PIPELINE_ID.match(name):
                continue
            if trees.is_pipeline_dir(self.git, root[name]):
                chosen.append(name)
                if len(chosen) > limit:
                    break
        etag = self.head_id()
        changes = self.changes.at(self.git, commit, directory)
        views = [self._view(changes.changed_by[name], trees.tree_at(self.git, root[name].id),
                            PipelineRef(project, name), etag) for name in chosen[:limit]]
        return views, len(chosen) > limit

    def get(self, pipeline_id: str, revision: str = "", *, with_files: bool = True,
            project: str = DEFAULT_PROJECT) -> PipelineView:
        return self._snapshot(PipelineRef(project, pipeline_id), self.resolve(revision), self.head_id(),
                              with_files=with_files)

    def _snapshot(self, ref: PipelineRef, commit: pygit2.Commit | None, etag: str, *,
                  with_files: bool = True) -> PipelineView:
        root = commit.tree if commit else None  # each `commit.tree` parses the tree again: read it once
        tree = trees.pipeline_tree(self.git, root, ref.path) if root else None
        if commit is None or root is None or tree is None or not trees.is_pipeline_dir(self.git, root[ref.path]):
            raise pipeline_not_found(ref)
        changed_by = self.changes.at(self.git, commit, ref.directory).changed_by[ref.pipeline_id]
        view = self._view(changed_by, tree, ref, etag)
        if not with_files:
            return view
        raw = trees.read_files(self.git, tree, max_files=self.limits.max_files)
        return PipelineView(**{**view.__dict__, "files": _decode(raw)})

    def _view(self, changed_by: str, tree: pygit2.Tree, ref: PipelineRef, etag: str) -> PipelineView:
        templated = pipeline_files.MAIN_TEMPLATE in tree and pipeline_files.MAIN not in tree
        display = "" if templated else self.display_names.of(self.git, tree[pipeline_files.MAIN].id)
        return PipelineView(ref.pipeline_id, self._commit_info(changed_by), etag, templated, display,
                            project=ref.project)

    def _commit_info(self, commit_id: str) -> CommitInfo:
        """Commits never change, and many pipelines share one, so their details are remembered."""
        info = self._commit_infos.get(commit_id)
        if info is None:
            if len(self._commit_infos) >= 4096:
                self._commit_infos.clear()
            info = self._commit_infos[commit_id] = CommitInfo.of(trees.commit_at(self.git, commit_id))
        return info

    def history(self, pipeline_id: str, *, start: str, after: str, limit: int,
                project: str = DEFAULT_PROJECT) -> tuple[list[CommitInfo], str]:
        """Commits that changed `pipeline_id` of `project`, newest first, walking first parents from
        `start` (the head when empty) and skipping through `after`. Returns the page and the head walked."""
        ref = PipelineRef(project, pipeline_id)
        commit = self.resolve(start) if start else self.head()
        if commit is None:
            raise pipeline_not_found(ref)
        walked_from = str(commit.id)
        found: list[CommitInfo] = []
        skipping = bool(after)
        current: pygit2.Commit | None = commit
        entry = _entry_id(commit.tree, ref.path)
        while current is not None and len(found) <= limit:
            parent = trees.commit_at(self.git, current.parent_ids[0]) if current.parent_ids else None
            parent_entry = _entry_id(parent.tree, ref.path) if parent else None
            if skipping:
                skipping = str(current.id) != after
            elif entry != parent_entry:
                found.append(CommitInfo.of(current))
            current, entry = parent, parent_entry
        if not found and not after:
            raise pipeline_not_found(ref)
        return found, walked_from

    # ---- writes ----------------------------------------------------------------------------

    def create(self, pipeline_id: str, files: Mapping[str, bytes], message: str, author: Author, *,
               project: str = DEFAULT_PROJECT) -> PipelineView:
        ref = PipelineRef(project, pipeline_id)
        pipeline_files.raise_if(pipeline_files.whole_problems(files, "pipeline.files", self.limits))
        with self.write_lock:
            head = self.head()
            if head is not None and ref.path in head.tree:
                raise AlreadyExists(f"pipeline {ref.name!r} already exists", reason="PIPELINE_EXISTS",
                                    metadata={"pipeline": ref.name})
            subtree = trees.build_tree(self.git, files)
            root = trees.replace_path(self.git, head.tree if head else None, ref.path.split("/"), subtree)
            commit = self._commit(head, root, message, author)
        return self._snapshot(ref, commit, str(commit.id))

    def update(self, pipeline_id: str, expected: str, upserts: Mapping[str, bytes], deletes: Sequence[str],
               message: str, author: Author, *, project: str = DEFAULT_PROJECT) -> PipelineView:
        ref = PipelineRef(project, pipeline_id)
        with self.write_lock:
            head = self._expect_head(expected)
            tree = trees.pipeline_tree(self.git, head.tree, ref.path) if head else None
            if head is None or tree is None:
                raise pipeline_not_found(ref)
            files = trees.read_files(self.git, tree, max_files=self.limits.max_files + len(deletes))
            _remove(files, deletes)
            files.update(upserts)
            pipeline_files.raise_if(pipeline_files.whole_problems(files, "upsert_files", self.limits))
            subtree = trees.build_tree(self.git, files)
            if subtree != tree.id:  # an edit that changes nothing makes no commit
                root = trees.replace_path(self.git, head.tree, ref.path.split("/"), subtree)
                head = self._commit(head, root, message, author)
        return self._snapshot(ref, head, str(head.id))

    def delete(self, pipeline_id: str, expected: str, message: str, author: Author, *,
               project: str = DEFAULT_PROJECT) -> CommitInfo:
        ref = PipelineRef(project, pipeline_id)
        with self.write_lock:
            head = self._expect_head(expected)
            if head is None or trees.pipeline_tree(self.git, head.tree, ref.path) is None:
                raise pipeline_not_found(ref)
            root = trees.replace_path(self.git, head.tree, ref.path.split("/"), None)
            return CommitInfo.of(self._commit(head, root, message, author))

    def import_pipelines(self, pipelines: Mapping[str, Mapping[str, bytes]], message: str, author: Author) -> None:
        """Adds many pipelines in one commit (seeding); existing ids are left as they are."""
        with self.write_lock:
            head = self.head()
            root_id = head.tree.id if head else None
            for pipeline_id, files in sorted(pipelines.items()):
                root = trees.tree_at(self.git, root_id) if root_id else None
                if root is not None and pipeline_id in root:
                    continue
                root_id = trees.replace_entry(self.git, root, pipeline_id, trees.build_tree(self.git, files))
            if root_id is not None and (head is None or root_id != head.tree.id):
                self._commit(head, root_id, message, author)

    def fast_forward(self, target: str) -> bool:
        """Moves the branch to `target` when it descends from the head; False when it does not."""
        with self.write_lock:
            head = self.head()
            oid = pygit2.Oid(hex=target)
            if head is not None and head.id != oid and not self.git.descendant_of(oid, head.id):
                return False
            if head is None or head.id != oid:
                self._move_branch(head, oid, f"fast-forward to {target}")
            return True

    def _expect_head(self, expected: str) -> pygit2.Commit | None:
        head = self.head()
        actual = str(head.id) if head else ""
        if expected != actual:
            raise Aborted("the branch moved since the pipeline was read; read it again and retry",
                          reason="REVISION_MISMATCH", metadata={"expected_revision": expected,
                                                                "current_revision": actual})
        return head

    def _commit(self, head: pygit2.Commit | None, tree: pygit2.Oid, message: str, author: Author) -> pygit2.Commit:
        signature = pygit2.Signature(author.name, author.email, int(time.time()), 0)
        parents = [head.id] if head else []
        oid = self.git.create_commit(None, signature, signature, message, tree, parents)
        self._move_branch(head, oid, message.splitlines()[0] if message else "commit")
        return trees.commit_at(self.git, oid)

    def _move_branch(self, head: pygit2.Commit | None, new: pygit2.Oid, reflog: str) -> None:
        """Compare-and-swap: succeeds only while the branch still points at `head` (another
        process sharing the repository may have moved it even though we hold our lock)."""
        try:
            if head is None:
                self.git.references.create(self.branch_ref, new)
                return
            ref = self.git.lookup_reference(self.branch_ref)
            if ref.target != head.id:
                raise pygit2.GitError("old reference value does not match")
            ref.set_target(new, reflog)
        except (pygit2.GitError, pygit2.AlreadyExistsError, KeyError):
            raise Aborted("the branch moved while committing; read it again and retry",
                          reason="REVISION_MISMATCH") from None


def _entry_id(tree: pygit2.Tree, name: str) -> pygit2.Oid | None:
    return tree[name].id if name in tree else None


def _remove(files: dict[str, bytes], deletes: Sequence[str]) -> None:
    for index, path in enumerate(deletes):
        if files.pop(path, None) is None:
            raise NotFound(f"delete_paths[{index}]: file {path!r} does not exist", reason="FILE_NOT_FOUND",
                           metadata={"path": path})


def _decode(raw: Mapping[str, bytes]) -> dict[str, str]:
    decoded = {}
    for path, data in raw.items():
        try:
            decoded[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FailedPrecondition(f"file {path!r} is not UTF-8 text", reason="FILE_NOT_UTF8",
                                     metadata={"path": path}) from None
    return decoded

