"""The one exception type for user mistakes.

A :class:`UserError` is printed by the CLI as one line on stderr (exit code 2), never as a
traceback. Anything else escaping the CLI is a bug in hdlgen.
"""

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in what the user gave us: a file, a model, an option.

    The message names what was wrong and what is accepted, in one line.
    """
