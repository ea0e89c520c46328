"""Shared test settings: a quick-to-compile PyTensor mode and a seeded NumPy generator."""

import numpy as np
import pytest

import fcn8_lasagne  # noqa: F401  (sets floatX=float32 as the tutorial ran)

#: Python-linker mode: no C or Numba compilation, so small test graphs build in milliseconds.
FAST_MODE = "FAST_COMPILE"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
