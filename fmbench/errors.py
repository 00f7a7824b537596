"""Errors fmbench raises for bad input; the CLI prints them as one line and exits non-zero."""

# Control characters (tab aside) shown as escapes: a message may quote a hostile file, and a terminal
# would obey the escape sequences in it (colours, titles, clearing the screen).
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if c != 0x09}


def first_line(error: BaseException, default: str | None = None) -> str:
    r"""The first line of an exception's message, control characters escaped (``default``, else its type
    name, when empty).

    Example:
        >>> first_line(ValueError("bad shape")), first_line(KeyError()), first_line(KeyError(), "")
        ('bad shape', 'KeyError', '')
        >>> print(first_line(ValueError("\x1b[2Jcleared\nsecond line")))
        \x1b[2Jcleared
    """
    text = str(error).strip()
    if text:
        return text.splitlines()[0].translate(_CONTROL)
    return type(error).__name__ if default is None else default


class FmbenchError(Exception):
    """Base class: a problem with the user's input, named in the message."""


class InputError(FmbenchError, ValueError):
    """A bad argument value (a split name, a seed, a limit): also a ``ValueError`` for Python callers."""


class SpecError(FmbenchError):
    """A malformed spec file in ``envs/`` or ``tasks/``."""


class UnknownIdError(FmbenchError, KeyError):
    """An env or task id that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelError(FmbenchError):
    """A model that cannot be loaded or does not fit the task's interface."""


class ResultError(FmbenchError):
    """A result record that is malformed, stale or from another task."""


class SubmissionError(FmbenchError):
    """A submission the leaderboard refuses."""


class DataError(FmbenchError):
    """Data files missing or malformed."""
