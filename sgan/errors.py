"""The one exception type that means "the user asked for something wrong", a full disk said as one, the one line
with exit 2 that both become, and the other exit codes a script can branch on."""

import errno
import sys
from contextlib import contextmanager

NO_SPACE = "No space left on device"  # how TensorFlow's file errors say ENOSPC
EXIT_USER_ERROR = 2
EXIT_NOT_PROMOTED = 3  # trained and published as a version, but `latest` still serves what it served before
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


def exit_code(work) -> int:
    """Runs `work()`; a user error, a missing TensorFlow or a full disk becomes one line on stderr and exit 2."""
    try:
        return work() or 0
    except UserError as e:
        message = str(e)
    except ModuleNotFoundError as e:
        if e.name != "tensorflow":
            raise
        message = "TensorFlow is not installed: pip install '.[cpu]' in the sgan folder (or '.[gpu]' for CUDA)"
    except Exception as e:
        if not no_space(e):
            raise
        message = (f"no space left on device ({str(e).strip().splitlines()[-1]}); free some space and run the same "
                   "command again")
    print(f"{ERROR_PREFIX}{message}", file=sys.stderr)
    return EXIT_USER_ERROR
