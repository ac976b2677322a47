"""The schemas layer's user error: input bytes that cannot become NanoEvents (format, tree, branch, values)."""

from fileset.errors import UserError


class SchemaError(UserError):
    """An input file or table that does not have the expected structure or holds invalid values."""
