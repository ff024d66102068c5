"""The one exception type that means "the user asked for something wrong", and a full disk said as one."""

import errno
from contextlib import contextmanager

NO_SPACE = "No space left on device"  # how TensorFlow's file errors say ENOSPC
EXIT_USER_ERROR = 2
ERROR_PREFIX = "sgan: error: "  # before the one line the command prints for a UserError


class UserError(Exception):
    """Bad input or an impossible configuration: the CLI prints the message and exits 2, no traceback."""


def no_space(error: BaseException) -> bool:
    """A full disk or quota, as an OSError or as TensorFlow's ResourceExhaustedError says it."""
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or NO_SPACE in str(error)


def first_line(error: BaseException) -> str:
    """What a one-line message quotes of an exception: its first line, or its type when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def writing(what):
    """Turns a full disk while writing `what` into the user's one line naming it."""
    try:
        yield
    except Exception as e:
        if no_space(e):
            raise UserError(f"no space left on device writing {what}; free some space and run the same command "
                            "again (nothing was written under its final name)") from None
        raise
