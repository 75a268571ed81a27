"""safe_files: reading under a root without following anything planted on the way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from odin_scheduler.safe_files import UnsafeFile, read_at, read_bounded, size_of


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "a" / "log").write_bytes(b"0123456789")
    (tmp_path / "secret").write_text("secret")
    return tmp_path / "root"


def test_a_regular_file_is_read_from_an_offset(root: Path) -> None:
    assert read_at(root, root / "a" / "log", 4, 3) == (b"456", 10)
    assert size_of(root, root / "a" / "log") == 10


def test_a_missing_file_reads_as_empty(root: Path) -> None:
    assert read_at(root, root / "a" / "none", 0, 10) == (b"", 0)
    assert read_bounded(root, root / "nothing" / "here", 10) is None


@pytest.mark.parametrize("where", ["last", "middle"])
def test_symlinks_anywhere_on_the_path_are_refused(root: Path, where: str) -> None:
    if where == "last":
        (root / "a" / "log").unlink()
        (root / "a" / "log").symlink_to(root.parent / "secret")
        target = root / "a" / "log"
    else:
        (root / "b").symlink_to(root.parent)
        target = root / "b" / "secret"
    with pytest.raises(UnsafeFile) as caught:
        read_at(root, target, 0, 100)
    assert str(root) not in str(caught.value)  # callers never learn the scheduler's own paths


def test_fifos_and_directories_are_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "a" / "fifo")
    with pytest.raises(UnsafeFile):
        read_at(root, root / "a" / "fifo", 0, 10)
    with pytest.raises(UnsafeFile):
        read_at(root, root / "a", 0, 10)


def test_paths_outside_the_root_or_with_dots_are_refused(root: Path) -> None:
    with pytest.raises(UnsafeFile):
        read_at(root, root.parent / "secret", 0, 10)
    with pytest.raises(UnsafeFile):
        read_at(root, root / "a" / ".." / ".." / "secret", 0, 10)


def test_bounded_reads_refuse_what_is_over_the_limit(root: Path) -> None:
    assert read_bounded(root, root / "a" / "log", 10) == b"0123456789"
    with pytest.raises(UnsafeFile, match="limit of 9"):
        read_bounded(root, root / "a" / "log", 9)
