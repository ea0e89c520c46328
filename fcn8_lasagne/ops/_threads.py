"""The worker threads of the CPU kernels.

The kernels split their work into blocks and run them with :func:`parallel_for` on a small
thread pool, each GEMM single-threaded. OpenBLAS's own threading synchronises its threads
at every call; on a busy machine a descheduled thread then stalls each of the hundreds of
GEMMs of a convolution, while pool threads that pull blocks from a queue just share the
work differently.
"""

import atexit
import concurrent.futures
import itertools
import os
import threading

from . import memory as _memory
from ._blas import blas_thread_count, single_threaded_blas

__all__ = ["parallel_for", "spans", "worker_count"]

# As many workers as OpenBLAS would use threads; one worker, leaving the threading to the
# BLAS, when it cannot be steered.
_WORKERS = blas_thread_count()
_pool = None
_pool_lock = threading.Lock()
# Set in pool threads: a parallel_for inside a task runs serially instead of waiting for
# the (busy) pool.
_in_worker = threading.local()


def worker_count():
    """Number of threads :func:`parallel_for` runs blocks on."""
    return _WORKERS


def _get_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                _WORKERS, thread_name_prefix="fcn8_lasagne-blas")
        return _pool


def _forget_pool():
    global _pool
    _pool = None


def _shutdown_pool():
    if _pool is not None:
        _pool.shutdown(wait=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
atexit.register(_shutdown_pool)


# Below this many floating-point operations, handing tasks to threads costs more than it saves.
_PARALLEL_FLOPS = 1 << 25


def spans(length, size):
    """``(start, stop)`` pairs covering ``range(length)`` in steps of ``size``: the blocks
    that tasks of :func:`parallel_for` usually cover."""
    return [(start, min(length, start + size)) for start in range(0, length, size)]


def parallel_for(tasks, body, make_state=None, flops=None):
    """Run ``body(task, state)`` for every task on the worker threads, GEMMs single-threaded.

    Workers pull tasks from a shared queue, so a worker that the OS deschedules delays only
    the tasks it holds. Tasks must write disjoint outputs, or accumulate into their
    worker's ``state``.

    Parameters
    ----------
    tasks : sequence
    body : callable
        ``body(task, state)``; exceptions propagate to the caller.
    make_state : callable, optional
        Creates one state object per worker (default: None).
    flops : float, optional
        Work of all tasks together; small jobs run in the calling thread.

    Returns
    -------
    list
        The states of the workers that ran at least one task.
    """
    tasks = list(tasks)
    serial = _WORKERS == 1 or len(tasks) < 2 or getattr(_in_worker, "active", False)
    if serial or (flops is not None and flops < _PARALLEL_FLOPS):
        state = None if make_state is None else make_state()
        for task in tasks:
            body(task, state)
        return [state] if tasks else []
    counter = itertools.count()
    lock = threading.Lock()

    def work():
        _in_worker.active = True
        # the allocator may have been installed after this thread started
        _memory.install_if_installed()
        state = None if make_state is None else make_state()
        ran = False
        while True:
            with lock:
                index = next(counter)
            if index >= len(tasks):
                return state, ran
            body(tasks[index], state)
            ran = True

    with single_threaded_blas():
        futures = [_get_pool().submit(work) for _ in range(min(_WORKERS, len(tasks)))]
        concurrent.futures.wait(futures)
    results = [future.result() for future in futures]
    return [state for state, ran in results if ran]


