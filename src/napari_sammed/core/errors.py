"""The project's error types: what a user did wrong, as opposed to what the program did wrong.

Code that checks its input raises :class:`InputError` (a ``ValueError``, so callers that caught
``ValueError`` keep working); the CLI prints it as one line with exit code 2 and the dock as a
message. Any other exception is a bug and keeps its traceback. This module imports nothing of
the project, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class InputError(ValueError):
    """A file (or argument) that cannot be used as given; ``str()`` is ``"<file>: <what>"``."""

    def __init__(self, path: str | Path | None, what: str) -> None:
        self.path, self.what = (None if path is None else str(path)), what
        super().__init__(what if path is None else f"{path}: {what}")


@contextmanager
def about(path: str | Path) -> Iterator[None]:
    """Name ``path`` in the input errors raised inside that do not name a file yet."""
    try:
        yield
    except InputError as error:
        if error.path is not None:
            raise
        raise InputError(path, error.what) from None


class NeedsOption(FileExistsError):
    """An output is in the way and an option would let us go on. ``template`` names options as
    ``{append}`` / ``{overwrite}``: ``str()`` gives plain names (the dock's wording), ``for_cli()``
    the command line's ``--append`` / ``--overwrite``."""

    OPTIONS = ("append", "overwrite")

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.render(lambda option: option))

    def render(self, name) -> str:
        text = self.template
        for option in self.OPTIONS:
            text = text.replace("{" + option + "}", name(option))
        return text

    def for_cli(self) -> str:
        return self.render(lambda option: f"--{option}")


class InputWarning(UserWarning):
    """Input used with a caveat the user must hear (the CLI prints it as one line)."""

    def __init__(self, path: str | Path | None, what: str) -> None:
        self.path, self.what = (None if path is None else str(path)), what
        super().__init__(what if path is None else f"{path}: {what}")
