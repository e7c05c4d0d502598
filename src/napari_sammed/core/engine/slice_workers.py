"""Two slices in flight on the CPU, the cores split between them.

One encoder call spends much of its time in work that keeps two cores poorly busy (GELU,
LayerNorm, small attention windows, the Python between ops). Two slices at once, each on half
the cores, keep them all busy: more slices per second than one slice on all cores (timings in
docs/benchmarks.md). Each slice's embedding is the one it gets alone on the same number of threads, bit for
bit; against one slice on all cores it is the same within float rounding.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class SliceWorkers:
    """``map(fn, items)`` on up to ``workers`` threads that share the process's intra-op threads.

    Torch's grad/inference mode and autocast are per thread: ``fn`` must enter them itself.
    """

    def __init__(self, workers: int = 2, threads: int | None = None) -> None:
        threads = threads or torch.get_num_threads()
        self.workers = max(min(workers, threads), 1)
        self.threads_each = max(threads // self.workers, 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self.workers < 2 or len(items) < 2:
            return [fn(item) for item in items]
        with self._lock:
            # Kept between calls (threads and their allocator caches stay warm); a forked child
            # inherits the pool object but not its threads, so it makes its own.
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="napari-sammed-embed",
                                                initializer=torch.set_num_threads, initargs=(self.threads_each,))
                self._pid = os.getpid()
            pool = self._pool
        return list(pool.map(fn, items))
