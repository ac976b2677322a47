"""The analysis layer's user error, and the project-wide base ``UserError`` the CLI catches (exit code 2)."""

from fileset.errors import ConfigError, UserError


class AnalysisError(UserError):
    """A user-facing error of orchestration, statistics or plotting, with a one-line message naming the culprit."""


__all__ = ["AnalysisError", "ConfigError", "UserError"]
