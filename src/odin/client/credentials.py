"""The bearer token the client sends: `ODIN_TOKEN`, else the token file `odin login` writes.

`load_token()` is the one place that decides, so where `odin login` keeps its token can change here alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from odin.client.errors import ConfigurationError

TOKEN_ENV = "ODIN_TOKEN"
TOKEN_FILE_ENV = "ODIN_TOKEN_FILE"
TOKEN_FILE_NAME = "token"


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/odin`, default `~/.config/odin`."""
    base = os.environ.get("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "odin"


def token_paths(suite_state_dir: Path | None = None) -> list[Path]:
    """Where a token file is looked for, first match wins."""
    paths = []
    if os.environ.get(TOKEN_FILE_ENV):
        paths.append(Path(os.environ[TOKEN_FILE_ENV]))
    if suite_state_dir is not None:
        paths.append(suite_state_dir / TOKEN_FILE_NAME)  # a dev suite's own login beats a production one
    paths.append(config_dir() / TOKEN_FILE_NAME)
    return paths


def load_token(suite_state_dir: Path | None = None) -> str | None:
    """The token to send, or None to send none (a suite without auth, or a call that needs no login)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    for path in token_paths(suite_state_dir):
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
        found = _token_from_file_text(text)
        if found:
            return found
    return None


def _token_from_file_text(text: str) -> str | None:
    """A bare token, or a JSON document holding `access_token` (or `token`)."""
    if not text.startswith("{"):
        return text or None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    value = document.get("access_token") or document.get("token") if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None
