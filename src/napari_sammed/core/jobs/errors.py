"""Which errors mean "your input is wrong" (one line, exit 2) and which are bugs (a traceback).

Input errors are the project's own types (:class:`InputError`, :class:`NeedsOption`, a bad
plan or checkpoint), the operating system refusing a file or the disk (missing, in the way,
not permitted, full), and - until every check raises :class:`InputError` - a ``ValueError``
that napari-sammed's own code raised about its input. A ``ValueError``, ``TypeError`` or an
``OSError`` without an errno that a library raised from inside our code is a bug.
"""

from __future__ import annotations

import errno
from pathlib import Path

#: The operating system's word on a file or the disk: the input or the machine, not the program.
FILE_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
               errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.EIO, errno.ELOOP,
               errno.EMFILE, errno.ENFILE, errno.EFBIG, errno.EBUSY, errno.ENOTEMPTY, errno.EXDEV}
FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
PACKAGE = Path(__file__).resolve().parents[2]  # .../napari_sammed


def input_error_types() -> tuple[type[BaseException], ...]:
    """The project's input-error types."""
    from ..io.inputs import InputError, NeedsOption
    from ..model.checkpoints import CheckpointError
    from ..model.lite_medsam import BundledWeightsError
    from .plan import PlanError

    return InputError, NeedsOption, PlanError, CheckpointError, BundledWeightsError


def raised_here(error: BaseException) -> bool:
    """Whether the ``raise`` that made ``error`` is a line of napari-sammed (not of a library)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def is_input_error(error: BaseException) -> bool:
    """One line and exit 2 (True), or a traceback and exit 1 (False)."""
    if isinstance(error, input_error_types()):
        return True
    if isinstance(error, FILE_ERRORS):  # ours (no errno) or the system's
        return True
    if isinstance(error, OSError):
        return error.errno in FILE_ERRNOS
    return isinstance(error, ValueError) and raised_here(error)
