"""Writes `.env` from `.env.example` on the first run, filling every secret with a fresh value."""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

SECRET_KEY_PATTERN = re.compile(r"_(PASSWORD|SECRET|SECRET_KEY|API_KEY|FERNET_KEY)$")
_ASSIGNMENT = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


@dataclass(frozen=True)
class EnvFileResult:
    path: Path
    created: bool
    generated: tuple[str, ...]


def new_secret(key: str) -> str:
    """A fresh random value in the format the consumer of `key` expects."""
    if key.endswith("_FERNET_KEY"):
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(32)


def render_with_secrets(example_text: str) -> tuple[str, list[str]]:
    """The example's text with every empty secret assignment filled; returns the filled keys."""
    lines: list[str] = []
    generated: list[str] = []
    for line in example_text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and SECRET_KEY_PATTERN.search(match["key"]) and not match["value"].strip():
            line = f"{match['key']}={new_secret(match['key'])}"
            generated.append(match["key"])
        lines.append(line)
    return "\n".join(lines) + "\n", generated


def ensure_env_file(example: Path, target: Path) -> EnvFileResult:
    """Create `target` from `example` when absent (mode 0600); never overwrite an existing file."""
    if target.exists():
        return EnvFileResult(target, created=False, generated=())
    if not example.is_file():
        raise FileNotFoundError(f"{example} is missing: cannot write {target}")
    text, generated = render_with_secrets(example.read_text(encoding="utf-8"))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return EnvFileResult(target, created=True, generated=tuple(generated))


def set_keys(path: Path, values: dict[str, str], comment: str) -> list[str]:
    """Set `values` in an existing env file: a key's assignment is replaced in place, a key that
    is absent is appended (after `comment`). Every other line, secrets included, stays byte for
    byte. Returns the keys whose value changed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pending = dict(values)
    changed: list[str] = []
    for number, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if match and match["key"] in pending:
            value = pending.pop(match["key"])
            if match["value"] != value:
                changed.append(match["key"])
            lines[number] = f"{match['key']}={value}"
    if pending:
        lines += ["", f"# {comment}", *(f"{key}={value}" for key, value in pending.items())]
        changed += list(pending)
    mode = path.stat().st_mode & 0o777
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(mode)
    return changed
