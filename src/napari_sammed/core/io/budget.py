"""The memory budget: how much memory reading one file may take, checked before anything is decoded.

Every reader knows, from a file's header, how many bytes its voxels take once decoded, and
refuses a file that needs more than the budget, so a tiny file that declares a huge array
ends with one line instead of the kernel killing the process. The budget is
``NAPARI_SAMMED_MEMORY_BUDGET`` (bytes, or a size such as ``512M``, ``8G``, ``1.5GiB``) when set,
else the memory this process can still get: the least of the machine's available memory, a
container (cgroup) limit and an address-space limit (``ulimit -v``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputError

ENV = "NAPARI_SAMMED_MEMORY_BUDGET"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"8G"`` -> 8 * 2**30 (K, M, G, T are powers of 1024; a plain number is bytes)."""
    match = _SIZE.fullmatch(text)
    if not match or float(match[1]) <= 0:
        raise InputError(None, f"{ENV}={text!r}: give a size such as 512M or 8G (or a number of bytes)")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def format_size(nbytes: float) -> str:
    """``17179869184`` -> ``"16.0 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes this process can still allocate: available memory, capped by cgroup and RLIMIT_AS."""
    limits = [_machine_available(), _cgroup_headroom(), _address_space_headroom()]
    return max(0, min(limit for limit in limits if limit is not None))


def memory_budget() -> int:
    """The budget in bytes: ``NAPARI_SAMMED_MEMORY_BUDGET``, else :func:`available_memory`."""
    text = os.environ.get(ENV, "").strip()
    return parse_size(text) if text else available_memory()


def check_memory(path: str | Path | None, nbytes: int, what: str) -> None:
    """Refuse ``what`` (e.g. "reading its 2 x 12288 x 12288 int16 voxels") when it needs more
    than the budget; the error names ``path`` and says how to change the budget."""
    budget = memory_budget()
    if nbytes > budget:
        source = "set" if os.environ.get(ENV, "").strip() else "the memory available; set"
        raise InputError(path, f"{what} needs {format_size(nbytes)}, more than the memory budget of "
                               f"{format_size(budget)} ({source} {ENV} to change it)")


def _machine_available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_headroom() -> int | None:
    """A container's memory limit less what it uses (cgroup v2, else v1); None without one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as a huge number
                return None
            return int(limit) - int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def _address_space_headroom() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves: the limit less this process's mapped size."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        pages = int(Path("/proc/self/statm").read_text().split()[0])
        return limit - pages * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError, IndexError):
        return None
