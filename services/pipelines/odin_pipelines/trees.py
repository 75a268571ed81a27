"""Reading and building git trees in memory: a pipeline directory <-> {path: bytes}."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import cast

import pygit2

from odin.runtime.errors import FailedPrecondition

_FILE_MODES = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)


def read_files(repo: pygit2.Repository, tree: pygit2.Tree, *, max_files: int) -> dict[str, bytes]:
    """Every regular file under `tree`; symlinks and submodules (only possible via a remote) are skipped."""
    files: dict[str, bytes] = {}
    for path, oid in walk_blobs(repo, tree):
        if len(files) >= max_files:
            raise FailedPrecondition(f"the pipeline has more than {max_files} files", reason="PIPELINE_TOO_LARGE")
        files[path] = blob_data(repo, oid)
    return files


def walk_blobs(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> Iterator[tuple[str, pygit2.Oid]]:
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.filemode == pygit2.GIT_FILEMODE_TREE:
            yield from walk_blobs(repo, tree_at(repo, entry.id), f"{path}/")
        elif entry.filemode in _FILE_MODES:
            yield path, entry.id


def build_tree(repo: pygit2.Repository, files: Mapping[str, bytes]) -> pygit2.Oid:
    """Writes blobs and nested trees for `files` (paths already checked) and returns the root tree id."""
    nested: dict[str, object] = {}
    for path, data in files.items():
        *dirs, leaf = path.split("/")
        node = nested
        for part in dirs:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = data
    return _write(repo, nested)


def _write(repo: pygit2.Repository, node: Mapping[str, object]) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, value in sorted(node.items()):
        if isinstance(value, bytes):
            builder.insert(name, repo.create_blob(value), pygit2.GIT_FILEMODE_BLOB)
        else:
            builder.insert(name, _write(repo, value), pygit2.GIT_FILEMODE_TREE)  # type: ignore[arg-type]
    oid: pygit2.Oid = builder.write()
    return oid


def replace_entry(repo: pygit2.Repository, root: pygit2.Tree | None, name: str,
                  subtree: pygit2.Oid | None) -> pygit2.Oid:
    """The root tree with directory `name` set to `subtree` (or removed when None)."""
    builder = repo.TreeBuilder(root) if root is not None else repo.TreeBuilder()
    if subtree is None:
        builder.remove(name)
    else:
        builder.insert(name, subtree, pygit2.GIT_FILEMODE_TREE)
    oid: pygit2.Oid = builder.write()
    return oid


def replace_path(repo: pygit2.Repository, root: pygit2.Tree | None, path: Sequence[str],
                 subtree: pygit2.Oid | None) -> pygit2.Oid:
    """The root tree with the directory at `path` (its components) set to `subtree`, or removed when None.

    Directories on the way are created as needed; ones a removal leaves empty are removed too, so
    deleting a project's last pipeline leaves no empty `_projects/<p>` behind.
    """
    head, *rest = path
    if rest:
        child = directory(repo, root, head) if root is not None else None
        if child is None and subtree is None:
            return root.id if root is not None else _empty_tree(repo)
        subtree = replace_path(repo, child, rest, subtree)
        if len(tree_at(repo, subtree)) == 0:
            subtree = None
    if subtree is None and (root is None or head not in root):
        return root.id if root is not None else _empty_tree(repo)
    return replace_entry(repo, root, head, subtree)


def _empty_tree(repo: pygit2.Repository) -> pygit2.Oid:
    oid: pygit2.Oid = repo.TreeBuilder().write()
    return oid


def directory(repo: pygit2.Repository, root: pygit2.Tree, path: str) -> pygit2.Tree | None:
    """The directory at `path` ('a' or 'a/b/c') in `root`, or None when there is none (or a file is there)."""
    if not path:
        return root
    if path not in root:
        return None
    entry = root[path]
    if entry.filemode != pygit2.GIT_FILEMODE_TREE:
        return None
    return tree_at(repo, entry.id)


def pipeline_tree(repo: pygit2.Repository, root: pygit2.Tree, pipeline_path: str) -> pygit2.Tree | None:
    """The directory of the pipeline at `pipeline_path` in `root`, or None when there is none."""
    return directory(repo, root, pipeline_path)


def is_pipeline_dir(repo: pygit2.Repository, entry: pygit2.Object) -> bool:
    """A top-level directory counts as a pipeline when it holds main.yml or main.yml.jinja2."""
    if entry.filemode != pygit2.GIT_FILEMODE_TREE:
        return False
    tree = tree_at(repo, entry.id)
    return "main.yml" in tree or "main.yml.jinja2" in tree


# pygit2's stubs type `repo[oid]` as a plain Object; these say what the caller knows it is.
def commit_at(repo: pygit2.Repository, oid: pygit2.Oid | str) -> pygit2.Commit:
    return cast(pygit2.Commit, repo[oid])


def tree_at(repo: pygit2.Repository, oid: pygit2.Oid | str) -> pygit2.Tree:
    return cast(pygit2.Tree, repo[oid])


def blob_data(repo: pygit2.Repository, oid: pygit2.Oid | str) -> bytes:
    return cast(pygit2.Blob, repo[oid]).data
