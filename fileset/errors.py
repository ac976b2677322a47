"""User-error classes. ``UserError`` is the project's one base: every layer raises its own subclass with a
one-line message naming the culprit, and the ``ana`` CLI catches them all (exit code 2).

This module lives in the lowest layer so that every layer can derive from the same base without importing
upwards (``fileset → schemas → processors → analysis``).
"""


class UserError(Exception):
    """A mistake in the user's input or configuration, carrying a one-line message that names the culprit."""


class FilesetError(UserError):
    """Bad input description: missing or unreadable fileset json, unknown sample, invalid sample metadata."""


class ConfigError(UserError):
    """A YAML/JSON document that cannot be read or does not validate (file, line or key path in the message)."""
