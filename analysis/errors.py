"""The one exception type for user mistakes (bad input, bad config): the CLI prints it and exits 2."""


class AnalysisError(Exception):
    """A user-facing error carrying a one-line message that names the culprit."""
