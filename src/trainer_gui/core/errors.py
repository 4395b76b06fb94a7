"""Errors that carry a message fit to show a user as it is.

Anything that reaches a person (CLI line, dialog) is a `UserError`; everything else is a bug and
is logged with its traceback instead of shown.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; `str(err)` says what is wrong and how to fix it."""

    exit_code = 2


class SpecError(UserError):
    """A job spec that does not validate. `problems` holds one line per bad field."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        if len(problems) == 1:
            msg = f"{where}{problems[0]}"
        else:
            msg = f"{where}{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(msg)


class BackendUnavailable(UserError):
    """A backend (Docker, AWS, an interpreter) cannot be used right now."""


class JobNotFound(UserError):
    """No job with the given id or name."""


class TorchMissing(BackendUnavailable):
    """The interpreter a local-process job would run with cannot import torch.

    A type of its own so the app can offer to install PyTorch into `python` instead of only
    showing the message; it survives pickling (the job host sends it to the window)."""

    def __init__(self, python: str, message: str | None = None) -> None:
        self.python = python
        super().__init__(message or f"PyTorch is not installed for {python}")

    def __reduce__(self) -> tuple[type[TorchMissing], tuple[str, str]]:
        return (type(self), (self.python, str(self)))
