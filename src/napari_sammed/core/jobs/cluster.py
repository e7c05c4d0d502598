"""Where a batch runs on dask.distributed: a LocalCluster bounded by the machine, or a scheduler
whose address is checked and whose handshake is timed.

``--cluster local:N`` starts at most one worker per core and per :data:`WORKER_MEMORY` of the
memory budget (each worker loads torch and the model and holds one volume), each worker
limited to its share of the budget (at least :data:`WORKER_MEMORY`). ``--scheduler`` takes
``tcp://HOST:PORT`` (or ``tls://``); dask's own connect waits for ever for a server that
accepts and never answers, so the handshake is tried first under the connect timeout. Every
failure is one :class:`ClusterError` line.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import InputError, InputWarning
from ..io.budget import format_size, memory_budget

#: What one worker process needs: torch and a model (~1 GiB with SAM-Med2D), a volume, its embeddings.
WORKER_MEMORY = 2 * 2**30
#: Seconds to wait for a scheduler's handshake when dask's ``distributed.comm.timeouts.connect`` is unset.
CONNECT_TIMEOUT = 30.0
_ADDRESS = re.compile(r"(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


class ClusterError(InputError):
    """A cluster that cannot be started or reached; one line naming it."""

    def __init__(self, what: str) -> None:
        super().__init__(None, what)


def parse_cluster(text: str) -> int:
    """``local:N`` -> N worker processes."""
    kind, _, count = text.partition(":")
    if kind != "local" or not count.isdigit() or int(count) < 1:
        raise ClusterError(f"--cluster takes local:N (N worker processes), got {text!r}")
    return int(count)


def local_workers(requested: int) -> int:
    """``requested`` capped by the cores and the memory budget (with a warning when capped)."""
    cores, budget = os.cpu_count() or 1, memory_budget()
    allowed = max(1, min(cores, budget // WORKER_MEMORY))
    if requested > allowed:
        warnings.warn(InputWarning(None, f"--cluster local:{requested}: starting {allowed} worker(s), what "
                                         f"{cores} core(s) and a memory budget of {format_size(budget)} "
                                         f"(~{format_size(WORKER_MEMORY)} a worker) allow"), stacklevel=2)
    return min(requested, allowed)


def check_address(address: str) -> str:
    """A scheduler address dask can dial: ``[tcp://|tls://]HOST:PORT``."""
    match = _ADDRESS.fullmatch(address.strip())
    if not match or not 0 < int(match[3]) < 65536:
        raise ClusterError(f"--scheduler {address!r}: give tcp://HOST:PORT (or tls://HOST:PORT) of a running "
                           "dask scheduler")
    return address.strip()


def connect_timeout() -> float:
    """dask's ``distributed.comm.timeouts.connect`` in seconds (default :data:`CONNECT_TIMEOUT`)."""
    import dask
    from dask.utils import parse_timedelta

    value = dask.config.get("distributed.comm.timeouts.connect", None)
    return float(parse_timedelta(value, "s")) if value is not None else CONNECT_TIMEOUT


def probe(address: str, timeout: float) -> None:
    """Connect and complete dask's handshake within ``timeout`` seconds, or raise ClusterError."""
    from distributed.comm import connect

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    try:
        asyncio.run(handshake())
    except (TimeoutError, asyncio.TimeoutError):
        raise ClusterError(f"--scheduler {address}: no dask scheduler answered within {timeout:g} s") from None
    except Exception as error:  # noqa: BLE001 - refused, unreachable, or an answer that is no dask handshake
        text = " ".join(str(error).split())[:200] or type(error).__name__
        raise ClusterError(f"--scheduler {address}: not a dask scheduler, or unreachable ({text})") from None


@contextmanager
def dask_client(cluster: str | None = None, scheduler: str | None = None) -> Iterator[tuple[object, int | None]]:
    """A ``distributed.Client`` on a bounded ``local:N`` cluster or on ``scheduler``; yields
    (client, local worker count or None). Nothing is started when the arguments are wrong."""
    from distributed import Client, LocalCluster

    if scheduler:
        address = check_address(scheduler)
        timeout = connect_timeout()
        probe(address, timeout)
        try:
            client = Client(address, timeout=timeout)
        except Exception as error:  # noqa: BLE001
            raise ClusterError(f"--scheduler {address}: {' '.join(str(error).split())[:200]}") from None
        with client:
            yield client, None
        return
    n = local_workers(parse_cluster(cluster))
    try:
        local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                             memory_limit=max(memory_budget() // n, WORKER_MEMORY))  # the nanny's limit
    except Exception as error:  # noqa: BLE001 - spawning, ports, limits
        raise ClusterError(f"--cluster {cluster}: cannot start {n} workers "
                           f"({' '.join(str(error).split())[:200]})") from None
    with local, Client(local) as client:
        yield client, n
