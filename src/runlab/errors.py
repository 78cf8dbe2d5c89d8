"""Errors that the CLI turns into exit codes, and the one prefix every error line has."""

from __future__ import annotations

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
