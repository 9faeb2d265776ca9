"""Errors a user can act on.

A :class:`UserError` carries one line that says what is wrong and what to do; the command
line prints it without a traceback (unless ``--debug``) and exits non-zero, and the GUI shows
it in a message. Anything else is a bug and is logged with its traceback.
"""


class UserError(Exception):
    """Something the user can fix: bad input, a missing file, a full disk."""

    exit_code = 2


def failure_reason(exc: BaseException) -> str:
    """One line for the user: a :class:`UserError`'s own words, else the exception's type and
    message (a bug, but the user still sees what failed)."""
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


class ModelError(UserError):
    """A model folder that cannot be loaded (missing, corrupt or unsupported files)."""


class SettingsError(UserError, ValueError):
    """A sampling or engine setting outside its valid range."""


class ContextOverflowError(UserError):
    """The prompt cannot fit the model's context even after dropping old turns.

    ``reply_room`` is set when the prompt would fit with a shorter reply: the most new tokens
    that leave room for it (each front end names its own setting for that)."""

    def __init__(self, message: str, *, reply_room: int | None = None) -> None:
        super().__init__(message)
        self.reply_room = reply_room


class StoreError(UserError):
    """The chat store cannot be opened or written (locked, read-only, disk full, newer)."""
