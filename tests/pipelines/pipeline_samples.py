"""Sample pipelines and authors for this directory's tests (a module of its own, not conftest:
several test directories have a conftest, so `from conftest import` breaks when they run together)."""

from __future__ import annotations

from pathlib import Path

from odin_pipelines.identity import Author

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "odin-samples"
ALICE = Author("alice", "alice@odin")
BOB = Author("bob", "bob@odin")


def main_yml(task: str = "train", image: str = "busybox", name: str | None = None) -> str:
    header = f"name: {name}\n" if name else ""
    return f"{header}tasks:\n- name: {task}\n  image: {image}\n  command: [echo, hello]\n"


def files(**extra: str) -> dict[str, bytes]:
    """A valid pipeline as the repository takes it: {path: bytes}."""
    out = {"main.yml": main_yml().encode()}
    out.update({path.replace("__", "/"): text.encode() for path, text in extra.items()})
    return out
