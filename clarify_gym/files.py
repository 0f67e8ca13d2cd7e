"""File helpers every layer uses: atomic JSON writes, output-folder checks and the source tree's
git commit."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from clarify_gym.errors import ConfigError

__all__ = ["check_output_folder", "git_commit", "write_json_atomic", "write_text_atomic"]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # a page others may read (mkstemp makes it owner-only)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_folder(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a folder a command can write into, checked before any work starts.

    Raises :class:`~clarify_gym.errors.ConfigError` naming ``flag`` when ``path`` is a file, lies
    under a file, or cannot be written (probed by making and removing a temporary folder in its
    nearest existing parent). Leaves nothing behind.

    >>> check_output_folder(__file__, "--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clarify_gym.errors.ConfigError: --out ...files.py is a file, not a folder; choose a folder path
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder; choose a folder path")
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{flag} {path}: {existing} is a file, so no folder can be made under it; choose "
            "another path"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".clarify-gym-probe-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"{flag} {path}: cannot write in {existing} ({exc.strerror}); choose a folder you "
            "can write to"
        ) from None
    return folder


def git_commit(folder: Path | None = None) -> str | None:
    """The git commit of the source tree (``+dirty`` when it has uncommitted changes), or None."""
    where = folder or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
