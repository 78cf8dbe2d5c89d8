"""Errors that the CLI turns into exit codes, and the one prefix every error line has."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

ERROR = "runlab: error: "  # every error the `runlab` command prints starts with this


class ConfigError(Exception):
    """Bad usage or bad config: exit code 2. Holds every problem found, not just the first."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(self.format())

    def format(self) -> str:
        """One `runlab: error: ...` line per problem (a problem's own continuation lines
        follow it indented)."""
        return "\n".join(ERROR + p for p in self.problems)


def did_you_mean(value: object, options: Iterable[str], n: int = 1, cutoff: float = 0.5) -> str:
    """` Did you mean 'x'?` (up to `n` close options, joined by "or"); empty when none is close."""
    close = difflib.get_close_matches(str(value), sorted(options) if n > 1 else list(options),
                                      n=n, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
