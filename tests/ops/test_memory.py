"""The caching allocator of ``fcn8_lasagne.ops.memory``: reuse, zeroing, resizing, threads,
the off switch."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from fcn8_lasagne.ops import memory as _memory

pytestmark = pytest.mark.skipif(_memory._load() is None,
                                reason="no C++ compiler")


@pytest.fixture(autouse=True, scope="module")
def caching_in_this_thread():
    """On for these tests, as inside a training loop; off for the rest of the worker."""
    with _memory.caching():
        assert _memory.install()
        yield

LARGE = (3 * _memory.MIN_BYTES) // 8  # float64 elements of a block of 3 MIN_BYTES


def handler_name():
    return _memory._handler_name()


def run_python(code, setting=None):
    """The words ``code`` prints in a fresh interpreter, with
    ``FCN8_LASAGNE_CACHING_ALLOCATOR`` set to ``setting`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "FCN8_LASAGNE_CACHING_ALLOCATOR"}
    if setting is not None:
        env["FCN8_LASAGNE_CACHING_ALLOCATOR"] = setting
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.split()


def test_installed_in_this_thread():
    assert handler_name() == "fcn8_lasagne_caching_allocator"
    assert np.ones(LARGE).base is None  # an ordinary owning array


def test_a_freed_large_block_is_reused_and_calloc_zeroes_it():
    before = _memory.statistics()
    first = np.full(LARGE, 7.0)
    address = first.ctypes.data
    del first
    zeros = np.zeros(LARGE)
    after = _memory.statistics()
    assert zeros.ctypes.data == address
    assert after["hits"] > before["hits"]
    assert not zeros.any()


def test_a_slightly_smaller_request_reuses_a_block_a_larger_one_does_not():
    _memory.release_idle()  # no blocks of earlier tests to choose from
    block = np.empty(LARGE)
    address = block.ctypes.data
    del block
    smaller = np.empty(LARGE - LARGE // 16)
    assert smaller.ctypes.data == address
    del smaller
    larger = np.empty(LARGE + LARGE // 4)
    assert larger.ctypes.data != address


def test_small_arrays_are_not_counted():
    before = _memory.statistics()
    values = np.arange(1000.0)
    del values
    assert _memory.statistics()["hits"] + _memory.statistics()["misses"] == (
        before["hits"] + before["misses"])


def test_resize_keeps_values_across_small_and_large_blocks():
    values = np.arange(1000.0)
    values.resize(LARGE, refcheck=False)  # small -> large
    np.testing.assert_array_equal(values[:1000], np.arange(1000.0))
    assert not values[1000:].any()
    values[:] = 3.0
    values.resize(2 * LARGE, refcheck=False)  # large -> larger
    np.testing.assert_array_equal(values[:LARGE], 3.0)
    values.resize(10, refcheck=False)  # large -> small
    np.testing.assert_array_equal(values, 3.0)


def test_arrays_of_other_threads_and_the_worker_threads():
    results = {}

    def work():
        results["before"] = handler_name()
        _memory.install_if_installed()
        results["after"] = handler_name()
        results["array"] = np.full(LARGE, 2.0)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    # a new thread starts with NumPy's allocator; install_if_installed puts ours in place
    assert results["before"] == "default_allocator"
    assert results["after"] == "fcn8_lasagne_caching_allocator"
    np.testing.assert_array_equal(results["array"], 2.0)
    del results["array"]  # freed in this thread: goes back to the cache


def test_worker_threads_started_before_it_was_turned_on_use_it():
    code = ("from fcn8_lasagne.ops import memory as _memory, _threads\n"
            "def names():\n"
            "    found = []\n"
            "    _threads.parallel_for([0, 1, 2, 3], lambda task, _: found.append(\n"
            "        _memory._handler_name()), flops=float(1 << 40))\n"
            "    return sorted(set(found))\n"
            "before = names()\n"
            "with _memory.caching():\n"
            "    _memory.install()\n"
            "    print(before, names())\n")
    assert run_python(code) == ["['default_allocator']", "['fcn8_lasagne_caching_allocator']"]


def test_release_idle_empties_the_cache():
    block = np.empty(LARGE)
    del block
    assert _memory.statistics()["idle_bytes"] > 0
    _memory.release_idle()
    assert _memory.statistics()["idle_bytes"] == 0


def test_after_a_caching_block_no_idle_block_is_kept():
    with _memory.caching():
        pass  # nested: still on afterwards
    block = np.empty(LARGE)
    del block
    assert _memory.statistics()["idle_bytes"] > 0
    code = ("from fcn8_lasagne.ops import memory as _memory; import numpy as np\n"
            "with _memory.caching():\n"
            "    _memory.install(); block = np.empty(1 << 20); del block\n"
            "    inside = _memory.statistics()['idle_bytes']\n"
            "block = np.empty(1 << 20); del block\n"
            "print(inside > 0, _memory.enabled(), _memory.statistics()['idle_bytes'])")
    assert run_python(code) == ["True", "False", "0"]


def test_the_off_switch_keeps_numpys_allocator():
    code = ("from fcn8_lasagne.ops import memory as _memory; import numpy as np; "
            "print(_memory.install(), _memory._handler_name())")
    assert run_python(code, "0") == ["False", "default_allocator"]


@pytest.mark.parametrize("setting, expected", [
    (None, "default_allocator"), ("1", "fcn8_lasagne_caching_allocator")])
def test_a_compiled_cpu_function_runs_with_it_when_turned_on(setting, expected):
    code = ("import numpy as np, pytensor.tensor as pt; from fcn8_lasagne.compile import "
            "function; from fcn8_lasagne.ops import memory as _memory; x = pt.vector('x'); "
            "f = function([x], x * 2); total = float(f(np.ones(3, x.dtype)).sum()); "
            "print(_memory._handler_name(), total)")
    assert run_python(code, setting) == [expected, "6.0"]
