"""The auth service's records (users, sessions, API tokens, projects, token versions) in SQLite or PostgreSQL.

One repository with one set of SQL statements for both databases (written with `?`
placeholders, rewritten to `%s` for psycopg). Calls are synchronous and short; the domain runs
them in a worker thread. Each public method is one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from odin.runtime.errors import Aborted, AlreadyExists, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL,
    role INTEGER NOT NULL,
    disabled INTEGER NOT NULL,
    password_hash TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    update_time DOUBLE PRECISION NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    state TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    expire_time DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_user ON refresh_tokens (username);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    create_time DOUBLE PRECISION NOT NULL,
    expire_time DOUBLE PRECISION,
    last_use_time DOUBLE PRECISION,
    revoke_time DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS api_tokens_by_user ON api_tokens (username, create_time);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_expiry ON refresh_tokens (expire_time);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS project_members (
    project TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    role INTEGER NOT NULL,
    PRIMARY KEY (project, username)
);
CREATE INDEX IF NOT EXISTS project_members_by_user ON project_members (username);
CREATE TABLE IF NOT EXISTS token_versions (
    username TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS token_versions_by_seq ON token_versions (seq);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('revocations', 0) ON CONFLICT (name) DO NOTHING;
INSERT INTO projects (id, display_name, description, create_time, revision)
    VALUES ('default', 'Default', 'Everyone, with their global role', 0, 1) ON CONFLICT (id) DO NOTHING
"""
# token_versions has no foreign key on purpose: a deleted user's entry must stay in the revocation
# feed, and a user created again under that name starts above the old tokens' version.

# Refresh token states: ACTIVE may be used once; USED was rotated (re-use revokes the family).
ACTIVE, USED, REVOKED = "active", "used", "revoked"
_USER_COLUMNS = "username, display_name, email, role, disabled, password_hash, create_time, update_time, revision"
_TOKEN_COLUMNS = "id, username, display_name, token_hash, create_time, expire_time, last_use_time, revoke_time"
_PROJECT_COLUMNS = "id, display_name, description, create_time, revision"


@dataclasses.dataclass(frozen=True)
class UserRow:
    username: str
    display_name: str
    email: str
    role: int
    disabled: bool
    password_hash: str
    create_time: float
    update_time: float
    revision: int

    @classmethod
    def of(cls, row: Sequence[Any]) -> UserRow:
        return cls(row[0], row[1], row[2], int(row[3]), bool(row[4]), row[5], float(row[6]), float(row[7]),
                   int(row[8]))


@dataclasses.dataclass(frozen=True)
class RefreshRow:
    token_hash: str
    family: str
    username: str
    state: str
    expire_time: float


@dataclasses.dataclass(frozen=True)
class ApiTokenRow:
    id: str
    username: str
    display_name: str
    token_hash: str
    create_time: float
    expire_time: float | None
    last_use_time: float | None
    revoke_time: float | None

    @classmethod
    def of(cls, row: Sequence[Any]) -> ApiTokenRow:
        return cls(*row)


@dataclasses.dataclass(frozen=True)
class ProjectRow:
    id: str
    display_name: str
    description: str
    create_time: float
    revision: int

    @classmethod
    def of(cls, row: Sequence[Any]) -> ProjectRow:
        return cls(row[0], row[1], row[2], float(row[3]), int(row[4]))


@dataclasses.dataclass(frozen=True)
class MemberRow:
    project: str
    username: str
    role: int


@dataclasses.dataclass(frozen=True)
class RevocationRow:
    username: str
    min_version: int
    seq: int


def project_not_found(project: str) -> NotFound:
    return NotFound(f"project projects/{project} does not exist", reason="PROJECT_NOT_FOUND",
                    metadata={"project": f"projects/{project}"})


class Tx(Protocol):
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(sql.replace("?", "%s"), tuple(params)).rowcount)


class Database:
    """Transactions on SQLite (`sqlite:///path`) or PostgreSQL (`postgresql://…`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._pool: Any = None
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sqlite = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA foreign_keys=ON")
            self._sqlite.execute("PRAGMA busy_timeout=5000")
        elif url.startswith(("postgresql://", "postgres://")):
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(url, min_size=1, max_size=4, open=True, timeout=10)
        else:
            raise ValueError(f"unsupported store_url scheme {url.split(':', 1)[0]!r}: use sqlite:/// or postgresql://")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        if self._sqlite is not None:
            with self._lock:
                self._sqlite.execute("BEGIN IMMEDIATE")
                try:
                    yield _SqliteTx(self._sqlite)
                except BaseException:
                    self._sqlite.execute("ROLLBACK")
                    raise
                self._sqlite.execute("COMMIT")
            return
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def create_schema(self) -> None:
        with self.transaction() as tx:
            if self._pool is not None:  # concurrent replicas must not race on CREATE TABLE
                tx.run("SELECT pg_advisory_xact_lock(7011)")
            for statement in filter(str.strip, SCHEMA.split(";")):
                tx.run(statement)

    def ping(self) -> bool:
        with self.transaction() as tx:
            return tx.rows("SELECT 1") == [(1,)]

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pool is not None:
            self._pool.close()


class Store:
    """The repository: every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- users

    def insert_user(self, user: UserRow) -> None:
        with self.db.transaction() as tx:
            if tx.rows("SELECT 1 FROM users WHERE username = ?", [user.username]):
                raise AlreadyExists(f"user users/{user.username} already exists", reason="USER_EXISTS",
                                    metadata={"user": f"users/{user.username}"})
            tx.run(f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [*dataclasses.astuple(user)[:4], int(user.disabled), *dataclasses.astuple(user)[5:]])

    def get_user(self, username: str) -> UserRow | None:
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", [username])
        return UserRow.of(rows[0]) if rows else None

    def list_users(self, after: str, limit: int) -> list[UserRow]:
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_USER_COLUMNS} FROM users WHERE username > ? ORDER BY username LIMIT ?",
                           [after, limit])
        return [UserRow.of(r) for r in rows]

    def has_admin(self, admin_role: int) -> bool:
        with self.db.transaction() as tx:
            return bool(tx.rows("SELECT 1 FROM users WHERE role = ? LIMIT 1", [admin_role]))

    def update_user(self, username: str, changes: dict[str, Any], revision: int | None, now: float, *,
                    revoke: bool = False) -> UserRow:
        """Applies `changes` (column → value) if the stored revision still is `revision` (None: any);
        `revoke` also voids the user's access tokens (in the same transaction)."""
        with self.db.transaction() as tx:
            current = self._current(tx, username, revision)
            if revoke:
                _bump(tx, username)
            # Booleans are stored as integers on both databases.
            values = {**{k: int(v) if isinstance(v, bool) else v for k, v in changes.items()},
                      "update_time": now, "revision": current.revision + 1}
            assignments = ", ".join(f"{column} = ?" for column in values)
            tx.run(f"UPDATE users SET {assignments} WHERE username = ?", [*values.values(), username])
            return UserRow.of(tx.rows(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", [username])[0])

    def delete_user(self, username: str, revision: int | None) -> None:
        with self.db.transaction() as tx:
            self._current(tx, username, revision)
            _bump(tx, username)
            tx.run("DELETE FROM project_members WHERE username = ?", [username])
            tx.run("DELETE FROM refresh_tokens WHERE username = ?", [username])
            tx.run("DELETE FROM api_tokens WHERE username = ?", [username])
            tx.run("DELETE FROM users WHERE username = ?", [username])

    @staticmethod
    def _current(tx: Tx, username: str, revision: int | None) -> UserRow:
        rows = tx.rows(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", [username])
        if not rows:
            raise NotFound(f"user users/{username} does not exist", reason="USER_NOT_FOUND",
                           metadata={"user": f"users/{username}"})
        user = UserRow.of(rows[0])
        if revision is not None and user.revision != revision:
            raise Aborted("the user changed since it was read; read it again", reason="ETAG_MISMATCH",
                          metadata={"user": f"users/{username}"})
        return user

    # ---- refresh tokens (sessions)

    def add_refresh_token(self, row: RefreshRow, now: float) -> None:
        with self.db.transaction() as tx:
            tx.run("INSERT INTO refresh_tokens (token_hash, family, username, state, create_time, expire_time) "
                   "VALUES (?, ?, ?, ?, ?, ?)", [row.token_hash, row.family, row.username, ACTIVE, now,
                                                 row.expire_time])

    def use_refresh_token(self, token_hash: str, now: float) -> tuple[str, RefreshRow | None]:
        """Marks an active token used. Returns ("ok", row), ("reused", row) after revoking the
        family of a token presented twice, or ("invalid", None)."""
        with self.db.transaction() as tx:
            rows = tx.rows("SELECT token_hash, family, username, state, expire_time FROM refresh_tokens "
                           "WHERE token_hash = ?", [token_hash])
            if not rows:
                return "invalid", None
            row = RefreshRow(*rows[0])
            if row.state == USED:
                tx.run("UPDATE refresh_tokens SET state = ? WHERE family = ?", [REVOKED, row.family])
                return "reused", row
            if row.state != ACTIVE or row.expire_time <= now:
                return "invalid", None
            claimed = tx.run("UPDATE refresh_tokens SET state = ? WHERE token_hash = ? AND state = ?",
                             [USED, token_hash, ACTIVE])
            return ("ok", row) if claimed == 1 else ("invalid", None)

    def family_of(self, token_hash: str) -> str | None:
        with self.db.transaction() as tx:
            rows = tx.rows("SELECT family FROM refresh_tokens WHERE token_hash = ?", [token_hash])
        return str(rows[0][0]) if rows else None

    def revoke_family(self, family: str) -> None:
        with self.db.transaction() as tx:
            tx.run("UPDATE refresh_tokens SET state = ? WHERE family = ?", [REVOKED, family])

    def revoke_sessions(self, username: str, keep_family: str = "") -> None:
        with self.db.transaction() as tx:
            tx.run("UPDATE refresh_tokens SET state = ? WHERE username = ? AND family <> ?",
                   [REVOKED, username, keep_family])

    def purge_refresh_tokens(self, now: float) -> int:
        with self.db.transaction() as tx:
            return tx.run("DELETE FROM refresh_tokens WHERE expire_time < ?", [now])

    # ---- API tokens

    def insert_api_token(self, row: ApiTokenRow) -> None:
        with self.db.transaction() as tx:
            tx.run(f"INSERT INTO api_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   list(dataclasses.astuple(row)))

    def api_token_by_hash(self, token_hash: str, now: float) -> ApiTokenRow | None:
        """The token with this hash, its last use stamped `now`."""
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?", [token_hash])
            if rows:
                tx.run("UPDATE api_tokens SET last_use_time = ? WHERE token_hash = ?", [now, token_hash])
        return ApiTokenRow.of(rows[0]) if rows else None

    def get_api_token(self, username: str, token_id: str) -> ApiTokenRow | None:
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE username = ? AND id = ?",
                           [username, token_id])
        return ApiTokenRow.of(rows[0]) if rows else None

    def list_api_tokens(self, username: str, before: tuple[float, str] | None, limit: int) -> list[ApiTokenRow]:
        """Newest first; `before` is the (create_time, id) of the previous page's last token."""
        time_, id_ = before if before else (float("inf"), "")
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE username = ? AND "
                           "(create_time < ? OR (create_time = ? AND id < ?)) "
                           "ORDER BY create_time DESC, id DESC LIMIT ?",
                           [username, time_, time_, id_ if before else "~", limit])
        return [ApiTokenRow.of(r) for r in rows]

    def revoke_api_token(self, username: str, token_id: str, now: float) -> ApiTokenRow | None:
        with self.db.transaction() as tx:
            tx.run("UPDATE api_tokens SET revoke_time = ? WHERE username = ? AND id = ? AND revoke_time IS NULL",
                   [now, username, token_id])
            rows = tx.rows(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE username = ? AND id = ?",
                           [username, token_id])
        return ApiTokenRow.of(rows[0]) if rows else None

    def revoke_unexpiring_api_tokens(self, username: str, now: float) -> int:
        with self.db.transaction() as tx:
            return tx.run("UPDATE api_tokens SET revoke_time = ? WHERE username = ? AND expire_time IS NULL "
                          "AND revoke_time IS NULL", [now, username])

    # ---- token versions and the revocation feed

    def token_claims(self, username: str) -> tuple[int, dict[str, int]]:
        """The user's current token version and explicit memberships (project → role), read together."""
        with self.db.transaction() as tx:
            rows = tx.rows("SELECT version FROM token_versions WHERE username = ?", [username])
            members = tx.rows("SELECT project, role FROM project_members WHERE username = ?", [username])
        return (int(rows[0][0]) if rows else 0), {str(p): int(r) for p, r in members}

    def revoke_tokens(self, username: str) -> None:
        with self.db.transaction() as tx:
            _bump(tx, username)

    def list_revocations(self, after_seq: int, limit: int) -> tuple[list[RevocationRow], int]:
        """Feed entries after `after_seq` in seq order, and the newest seq."""
        with self.db.transaction() as tx:
            rows = tx.rows("SELECT username, version, seq FROM token_versions WHERE seq > ? ORDER BY seq LIMIT ?",
                           [after_seq, limit])
            latest = tx.rows("SELECT value FROM counters WHERE name = 'revocations'")
        return [RevocationRow(str(u), int(v), int(q)) for u, v, q in rows], int(latest[0][0]) if latest else 0

    # ---- projects

    def insert_project(self, row: ProjectRow) -> None:
        with self.db.transaction() as tx:
            if tx.rows("SELECT 1 FROM projects WHERE id = ?", [row.id]):
                raise AlreadyExists(f"project projects/{row.id} already exists", reason="PROJECT_EXISTS",
                                    metadata={"project": f"projects/{row.id}"})
            tx.run(f"INSERT INTO projects ({_PROJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?)", list(dataclasses.astuple(row)))

    def get_project(self, project: str) -> ProjectRow | None:
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", [project])
        return ProjectRow.of(rows[0]) if rows else None

    def list_projects(self, after: str, limit: int, member: str | None) -> list[ProjectRow]:
        """Projects by id after `after`; with `member`, only `default` and the user's memberships."""
        columns = ", ".join(f"p.{c.strip()}" for c in _PROJECT_COLUMNS.split(","))
        with self.db.transaction() as tx:
            if member is None:
                rows = tx.rows(f"SELECT {columns} FROM projects p WHERE p.id > ? ORDER BY p.id LIMIT ?",
                               [after, limit])
            else:
                rows = tx.rows(f"SELECT {columns} FROM projects p WHERE p.id > ? AND (p.id = 'default' OR EXISTS "
                               "(SELECT 1 FROM project_members m WHERE m.project = p.id AND m.username = ?)) "
                               "ORDER BY p.id LIMIT ?", [after, member, limit])
        return [ProjectRow.of(r) for r in rows]

    def update_project(self, project: str, changes: dict[str, Any], revision: int | None) -> ProjectRow:
        with self.db.transaction() as tx:
            current = _current_project(tx, project, revision)
            values = {**changes, "revision": current.revision + 1}
            tx.run(f"UPDATE projects SET {', '.join(f'{c} = ?' for c in values)} WHERE id = ?",
                   [*values.values(), project])
            return ProjectRow.of(tx.rows(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", [project])[0])

    def delete_project(self, project: str, revision: int | None) -> None:
        """Deletes the project and its memberships; the former members' tokens are voided."""
        with self.db.transaction() as tx:
            _current_project(tx, project, revision)
            for (username,) in tx.rows("SELECT username FROM project_members WHERE project = ?", [project]):
                _bump(tx, str(username))
            tx.run("DELETE FROM project_members WHERE project = ?", [project])
            tx.run("DELETE FROM projects WHERE id = ?", [project])

    def set_member(self, project: str, username: str, role: int) -> bool:
        """Adds or changes a membership (voiding the member's tokens when it changed); False if the user is gone."""
        with self.db.transaction() as tx:
            _current_project(tx, project, None)
            if not tx.rows("SELECT 1 FROM users WHERE username = ?", [username]):
                return False
            current = tx.rows("SELECT role FROM project_members WHERE project = ? AND username = ?",
                              [project, username])
            if current and int(current[0][0]) == role:
                return True
            if current:
                tx.run("UPDATE project_members SET role = ? WHERE project = ? AND username = ?",
                       [role, project, username])
            else:
                tx.run("INSERT INTO project_members (project, username, role) VALUES (?, ?, ?)",
                       [project, username, role])
            _bump(tx, username)
            return True

    def remove_member(self, project: str, username: str) -> bool:
        with self.db.transaction() as tx:
            removed = tx.run("DELETE FROM project_members WHERE project = ? AND username = ?", [project, username])
            if removed:
                _bump(tx, username)
            return removed > 0

    def list_members(self, project: str, after: str, limit: int) -> list[MemberRow]:
        with self.db.transaction() as tx:
            rows = tx.rows("SELECT project, username, role FROM project_members WHERE project = ? AND username > ? "
                           "ORDER BY username LIMIT ?", [project, after, limit])
        return [MemberRow(str(p), str(u), int(r)) for p, u, r in rows]

    def member_role(self, project: str, username: str) -> int | None:
        with self.db.transaction() as tx:
            rows = tx.rows("SELECT role FROM project_members WHERE project = ? AND username = ?", [project, username])
        return int(rows[0][0]) if rows else None


def _bump(tx: Tx, username: str) -> None:
    """Raises the user's token version (older access tokens become void) and logs it in the feed."""
    seq = int(tx.rows("UPDATE counters SET value = value + 1 WHERE name = 'revocations' RETURNING value")[0][0])
    tx.run("INSERT INTO token_versions (username, version, seq) VALUES (?, 1, ?) ON CONFLICT (username) "
           "DO UPDATE SET version = token_versions.version + 1, seq = excluded.seq", [username, seq])


def _current_project(tx: Tx, project: str, revision: int | None) -> ProjectRow:
    rows = tx.rows(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", [project])
    if not rows:
        raise project_not_found(project)
    row = ProjectRow.of(rows[0])
    if revision is not None and row.revision != revision:
        raise Aborted("the project changed since it was read; read it again", reason="ETAG_MISMATCH",
                      metadata={"project": f"projects/{project}"})
    return row
