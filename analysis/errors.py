"""The analysis layer's user error, and the project-wide base ``UserError`` the CLI catches (exit code 2)."""

from fileset.errors import ConfigError, UserError


class AnalysisError(UserError):
    """A user-facing error of orchestration, statistics or plotting, with a one-line message naming the culprit."""


class UnreadableInputError(AnalysisError):
    """Input files or chunks that cannot be read (missing, truncated, corrupt). The message names them; the
    ``ana`` command adds how to go on (``--skip-bad-files`` where the command has that flag)."""


__all__ = ["AnalysisError", "ConfigError", "UnreadableInputError", "UserError"]
