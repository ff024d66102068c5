"""The one exception type that means "the user asked for something wrong"."""


class UserError(Exception):
    """Bad input or an impossible configuration: the CLI prints the message and exits 2, no traceback."""
