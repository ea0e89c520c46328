"""Timing shared by the benchmark scripts."""

import time

import numpy as np


def best_times(functions, repeat, settle=0.0, run=1):
    """Best wall time of each function, calling them in turns so load spikes hit all alike.

    Parameters
    ----------
    functions : dict of str to callable
        Each is called once to warm up, then ``repeat`` times.
    repeat : int
    settle : float, optional
        Seconds to wait before each timed call, so that threads left spinning by the
        previous call (PyTorch's OpenMP workers spin-wait after each call) do not share the
        cores with the next one.

    Returns
    -------
    dict of str to float
        Seconds.
    """
    for function in functions.values():
        function()
    best = dict.fromkeys(functions, np.inf)
    for _ in range(repeat):
        for name, function in functions.items():
            if settle:
                time.sleep(settle)
            for _ in range(run):
                start = time.perf_counter()
                function()
                best[name] = min(best[name], time.perf_counter() - start)
    return best
