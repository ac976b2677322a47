"""The processors layer's user error: a chunk or a processor setting that cannot give a right answer."""

from fileset.errors import UserError


class ProcessorError(UserError):
    """Invalid processor options, or event content a processor refuses (e.g. non-finite kinematics)."""
