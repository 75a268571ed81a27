"""Callers with project memberships, for the project rules of the pipelines service.

A token carries memberships in its `prj` claim (`{"<project>": "viewer|user|admin"}`), signed with
the test session's key (`support.auth`), so a service started by `start_service` accepts it.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Mapping

import jwt
from support import auth

from odin.runtime.tokens import (
    ALGORITHM,
    Identity,
    KeyCache,
    Role,
    TokenSettings,
    TokenVerifier,
    jwks_file_fetch,
)

# name -> (global role, memberships). Global viewers, so only memberships give them anything beyond
# reading the default project; carol is a plain single-team user of the default project.
PEOPLE: dict[str, tuple[str, dict[str, str]]] = {
    "admin": ("admin", {}),
    "alice": ("viewer", {"team-a": "user"}),
    "bob": ("viewer", {"team-b": "user"}),
    # A user elsewhere, so the interceptor's best-role pre-check passes and the handler's project check decides.
    "vera": ("viewer", {"team-a": "viewer", "team-c": "user"}),
    "carol": ("user", {}),
}


def project_token(username: str, role: str, projects: Mapping[str, str]) -> str:
    """An access token whose `prj` claim holds `projects` (project id -> role name)."""
    key, kid = auth.signing_key()
    settings = TokenSettings()
    now = int(time.time())
    claims = {"iss": settings.issuer, "aud": settings.audience, "sub": f"users/{username}", "role": role,
              "iat": now, "nbf": now, "exp": now + auth.SESSION_SECONDS, "jti": uuid.uuid4().hex,
              "prj": dict(projects)}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


def token_of(name: str) -> str:
    role, projects = PEOPLE[name]
    return project_token(name, role, projects)


def identity_of(name: str) -> Identity:
    """What the verifier makes of `token_of(name)`, built directly (for in-process servicer tests)."""
    role, projects = PEOPLE[name]
    return Identity(name, Role[role.upper()], projects={p: Role[r.upper()] for p, r in projects.items()})


@functools.cache
def verifier_reads_projects() -> bool:
    """Whether the runtime's verifier turns the `prj` claim into `Identity.projects` yet."""
    verifier = TokenVerifier(KeyCache(jwks_file_fetch(auth.jwks_file())), TokenSettings())
    identity = asyncio.run(verifier.verify(project_token("probe", "viewer", {"probe-project": "user"})))
    return dict(identity.projects) == {"probe-project": Role.USER}
