"""Timing shared by the benchmark scripts."""

import time

import numpy as np


def best_times(functions, repeat):
    """Best wall time of each function, calling them in turns so load spikes hit all alike.

    Parameters
    ----------
    functions : dict of str to callable
        Each is called once to warm up, then ``repeat`` times.
    repeat : int

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
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
