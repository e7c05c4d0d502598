"""Which errors mean "your input is wrong" (one line, exit 2) and which are bugs (a traceback).

Input errors are the project's own types (:class:`~napari_sammed.core.errors.InputError`,
:class:`~napari_sammed.core.errors.NeedsOption`, a bad plan or checkpoint, weights that are
missing) and the operating system refusing a file or the disk (missing, in the way, not
permitted, full). Every check of what a user or caller gave raises one of those types; any
other exception - a ``ValueError`` or ``TypeError`` (a library's, or a check of values our own
code computed) or an ``OSError`` without a file errno - is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys

from ..errors import InputError, NeedsOption

#: The operating system's word on a file or the disk: the input or the machine, not the program.
FILE_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
               errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.EIO, errno.ELOOP,
               errno.EMFILE, errno.ENFILE, errno.EFBIG, errno.EBUSY, errno.ENOTEMPTY, errno.EXDEV}
FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


#: The other modules' input-error types, (module, class name).
ELSEWHERE = (("napari_sammed.core.jobs.plan", "PlanError"),
             ("napari_sammed.core.model.checkpoint_scan", "CheckpointError"),
             ("napari_sammed.core.model.lite_medsam", "BundledWeightsError"))


def input_error_types() -> tuple[type[BaseException], ...]:
    """The project's input-error types. A type whose module was never imported cannot have been
    raised, and importing the model's modules would cost a model-free command torch's 2 s."""
    loaded = [getattr(sys.modules[module], name) for module, name in ELSEWHERE if module in sys.modules]
    return (InputError, NeedsOption, *loaded)


def is_input_error(error: BaseException) -> bool:
    """One line and exit 2 (True), or a traceback and exit 1 (False)."""
    if isinstance(error, input_error_types()):
        return True
    if isinstance(error, FILE_ERRORS):  # ours (no errno) or the system's
        return True
    return isinstance(error, OSError) and error.errno in FILE_ERRNOS
