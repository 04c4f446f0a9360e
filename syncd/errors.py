"""The exception family: each error carries the exit code of CONTRACT section 4."""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_PENDING = 4


class SyncdError(Exception):
    """An error the user can act on; its message is one clear sentence."""

    exit_code = EXIT_RUNTIME


class UsageError(SyncdError):
    """Bad command-line use or bad admin input (unknown group, duplicate name)."""

    exit_code = EXIT_USAGE


class ConfigError(SyncdError):
    """The configuration is invalid; ``problems`` holds one ``FILE:LINE:COL: message`` each."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class SourceError(SyncdError):
    """A source was unreachable or answered in part: the run fails and changes nothing."""

    exit_code = EXIT_RUNTIME


class StoreError(SyncdError):
    """The group store could not be read or written."""

    exit_code = EXIT_RUNTIME


class StaleChange(SyncdError):
    """A change found nothing to change in the store (the row it names is gone, or not as
    the plan saw it): the store moved under the run, or a plan does not match the store.
    The transaction rolls back; no audit record tells of a change that did not happen."""

    exit_code = EXIT_RUNTIME
