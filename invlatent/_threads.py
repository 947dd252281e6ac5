"""Run many small tensor operations fast: one intra-op thread each, work split over Python threads.

A loop of small operations (a few thousand elements each) gains nothing from PyTorch's intra-op
threads and can lose much: each operation wakes the OpenMP team, and on a shared or busy machine
the team waits for a core. The k-NN block loop of :mod:`invlatent.quotient._knn` ran 22 times
slower with two intra-op threads than with one on a 2-core machine that was also building the book
(N = 30,000 latents: 89 s against 4.0 s). :func:`map_blocks` runs such a loop with one intra-op
thread and spreads its independent items over ``workers`` Python threads instead (PyTorch and the
assignment solver release the GIL inside their kernels). It imports nothing from the package.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

import torch

__all__ = ["intra_op_threads", "map_blocks", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")

_LOCK = threading.Lock()


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Set PyTorch's intra-op thread count to ``n`` inside the block, and restore it after."""
    with _LOCK:
        old = torch.get_num_threads()
        if old != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _LOCK:
            if torch.get_num_threads() != old:
                torch.set_num_threads(old)


def default_workers() -> int:
    """Worker threads for :func:`map_blocks`: the intra-op threads PyTorch would use (at least 1)."""
    return max(1, torch.get_num_threads() or os.cpu_count() or 1)


def map_blocks(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]`` with one intra-op thread, the items spread over ``workers`` threads
    (in order of ``items``; the results come back in the same order).

    The workers run under the caller's torch-function modes (which are thread-local), so code
    such as :func:`invlatent.testing.simulated_cuda` or ``with torch.device(...)`` applies there too.
    """
    with intra_op_threads(1):
        if workers <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        from torch.overrides import _get_current_function_mode_stack

        modes = _get_current_function_mode_stack()
        if modes:
            inner = fn

            def fn(x: T) -> R:  # type: ignore[misc]
                with ExitStack() as stack:
                    for mode in modes:
                        stack.enter_context(mode)
                    return inner(x)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, items))
