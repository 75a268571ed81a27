"""Who local tasks run as, and what they may see of the scheduler.

A task is code any job submitter chose. Run as the scheduler's own user it could read the scheduler's environment
through `/proc/<pid>/environ` (the store URL, the service token file's path, under `odin dev` the auth keys) and
every file the scheduler can. So:

* a task's environment is built from nothing: a few harmless basics (PATH, LANG, ...), the task spec's `env` and
  Odin's own variables (`clean_environment`);
* when the scheduler runs as root, tasks run as `local_task_user` (default `nobody`), never uid 0 (`resolve`);
* when it does not, that cannot be changed, and the start log says so plainly (`privilege_notice`).
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from odin.runtime.config import ConfigError

log = logging.getLogger("odin.scheduler.local")

DEFAULT_TASK_USER = "nobody"
# Inherited from the scheduler only because they are not secret and tools need them; everything else is dropped.
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")
FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class TaskUser:
    name: str
    uid: int
    gid: int
    home: Path
    setpriv: str  # the tool that drops to this user right before the task's command runs

    def command(self, command: list[str]) -> list[str]:
        """`command` run as this user, with no supplementary groups (root's would leak through)."""
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *command]


def is_root() -> bool:
    return os.geteuid() == 0


def resolve(name: str | None, root: Callable[[], bool] = is_root) -> TaskUser | None:
    """The user tasks run as: `name` when the scheduler is root (None: the scheduler's own user).

    `name` None is the embedded engine's choice: tasks are the embedding program's own and run as it, silently.
    """
    if name is None:
        return None
    if not root():
        log.warning(privilege_notice(_own_user()))
        return None
    if not name:
        log.warning("local_task_user is empty: local tasks run as root, with the scheduler's full privileges")
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"ODIN_SCHEDULER_LOCAL_TASK_USER: no such user {name!r} (create it, or name another "
                          "unprivileged user)") from None  # fmt: skip
    if entry.pw_uid == 0:
        raise ConfigError(f"ODIN_SCHEDULER_LOCAL_TASK_USER: {name!r} is uid 0; tasks must not run as root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ConfigError("running local tasks as another user needs `setpriv` (util-linux); install it")
    log.info("local tasks run as %s (uid %d) with a clean environment", name, entry.pw_uid)
    return TaskUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), setpriv)


def privilege_notice(user: str) -> str:
    return (f"local tasks run as {user}, the scheduler's own user, with its privileges: anyone who can run a "
            "job can read what this user can read (start the scheduler as root to run tasks as an unprivileged "
            "local_task_user)")  # fmt: skip


def clean_environment(env: Mapping[str, str], odin: Mapping[str, str], cwd: Path,
                      user: TaskUser | None) -> dict[str, str]:  # fmt: skip
    """Basics, then the task's `env`, then Odin's variables (which a task's env cannot override)."""
    base = {k: os.environ[k] for k in INHERITED if k in os.environ}
    base.setdefault("PATH", FALLBACK_PATH)
    base.setdefault("LANG", "C.UTF-8")
    if user is None:
        base["HOME"] = os.environ.get("HOME") or str(cwd)
    else:
        # `nobody`'s home does not exist; tools that write to $HOME then write into the task's own directory.
        base["HOME"] = str(user.home) if user.home.is_dir() else str(cwd)
        base["USER"] = base["LOGNAME"] = user.name
        base["PATH"] = searchable_path(base["PATH"])
    return {**base, **env, **odin}


@functools.lru_cache(maxsize=8)
def searchable_path(path: str) -> str:
    """The PATH entries an unprivileged user can reach: the scheduler's own may point into a private home
    (a virtual environment or pyenv under /root), where `python3` would then fail with "permission denied"
    instead of resolving to the system's. Empty: the system's directories. Remembered per PATH value (the
    scheduler's PATH does not change), so starting a task stats nothing."""
    kept = [entry for entry in path.split(os.pathsep) if entry and _reachable_by_others(Path(entry))]
    return os.pathsep.join(kept) or FALLBACK_PATH


def _reachable_by_others(directory: Path) -> bool:
    """Whether every directory from / down to `directory` is searchable by others (o+x)."""
    try:
        current = directory.resolve()
        if not current.is_dir():
            return False
        return all(part.stat().st_mode & 0o001 for part in (current, *current.parents))
    except OSError:
        return False


def _own_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
