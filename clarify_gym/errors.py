"""The few exception classes clarify-gym raises.

Each message says what is wrong, why, and how to fix it. Catch :class:`ClarifyGymError` to catch
all of them.
"""

from __future__ import annotations

__all__ = [
    "ClarifyGymError",
    "ConfigError",
    "DatasetUnavailableError",
    "EnvConfigError",
    "EpisodeEndedError",
    "LLMError",
    "LLMReplyError",
    "MissingDependencyError",
    "TaskFormatError",
]


class ClarifyGymError(Exception):
    """Base class of every error clarify-gym raises on purpose."""


class TaskFormatError(ClarifyGymError, ValueError):
    """A task file or row is not in the DOLOMITES format.

    Carries the file, the 1-based line number and the offending key, so the message can point
    at the exact place to fix.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path, self.line, self.key = path, line, key
        where = ", ".join(
            part
            for part in (
                f"file {path}" if path else "",
                f"line {line}" if line is not None else "",
                f"key {key!r}" if key else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(ClarifyGymError, ValueError):
    """Settings that cannot be used together or at all (a command's flags, a config
    dataclass); the message names the setting and the fix."""


class EnvConfigError(ClarifyGymError, ValueError):
    """An env id is not registered, or the env does not accept the arguments it was given."""


class DatasetUnavailableError(ClarifyGymError, RuntimeError):
    """A remote dataset (e.g. on the Hugging Face hub) could not be reached."""


class MissingDependencyError(ClarifyGymError, ImportError):
    """An optional dependency is needed for this feature and is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the package {package!r}, which is not installed. "
            f'Install it with: pip install "clarify-gym[{extra}]"'
        )


class EpisodeEndedError(ClarifyGymError, RuntimeError):
    """`step` was called after the episode ended."""


class LLMError(ClarifyGymError, RuntimeError):
    """An LLM endpoint failed after every retry, or its reply could not be used."""


class LLMReplyError(LLMError):
    """The endpoint answered, but the reply was not the JSON asked for, even after one repair
    request. Callers that can go on (the LLM user, the LLM judge) turn it into an error turn or
    verdict; a failing endpoint raises the plain :class:`LLMError`.

    ``usage`` holds the tokens the failed exchange cost (a dict as ``Usage.as_dict()``)."""

    def __init__(self, message: str, *, usage: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.usage = usage


def require(module: str, *, extra: str, feature: str, package: str | None = None) -> object:
    """Import an optional dependency, or raise :class:`MissingDependencyError` with the install hint.

    >>> require("json", extra="dev", feature="the doctest").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra, feature) from exc
