"""Parameter initialisers with Lasagne's names, formulas and random stream.

Each initialiser is called with a shape and returns a NumPy array of dtype ``floatX`` drawn
from :func:`fcn8_lasagne.random.get_rng` (NumPy's global generator unless replaced), so
seeding ``np.random`` reproduces the tutorial's initial weights draw for draw.
"""

import numpy as np
import pytensor

from .random import get_rng

__all__ = [
    "Initializer",
    "Normal",
    "Uniform",
    "Glorot",
    "GlorotNormal",
    "GlorotUniform",
    "He",
    "HeNormal",
    "HeUniform",
    "Constant",
    "Sparse",
    "Orthogonal",
    "Bilinear",
]


def _floatX(array):
    return np.asarray(array, dtype=pytensor.config.floatX)


class Initializer:
    """Base class: ``initializer(shape)`` returns ``initializer.sample(shape)``."""

    def __call__(self, shape):
        return self.sample(shape)

    def sample(self, shape):
        """Return an array of the given shape.

        Parameters
        ----------
        shape : tuple of int
        """
        raise NotImplementedError()


class Normal(Initializer):
    """Samples from a Gaussian with the given mean and standard deviation."""

    def __init__(self, std=0.01, mean=0.0):
        self.std = std
        self.mean = mean

    def sample(self, shape):
        return _floatX(get_rng().normal(self.mean, self.std, size=shape))


class Uniform(Initializer):
    """Samples uniformly from ``[-range, range]``, ``range=(a, b)``, or mean ± sqrt(3)·std."""

    def __init__(self, range=0.01, std=None, mean=0.0):
        if std is not None:
            low, high = mean - np.sqrt(3) * std, mean + np.sqrt(3) * std
        else:
            try:
                low, high = range
            except TypeError:
                low, high = -range, range
        self.range = (low, high)

    def sample(self, shape):
        return _floatX(get_rng().uniform(low=self.range[0], high=self.range[1], size=shape))


def _resolve_gain(gain):
    return np.sqrt(2) if gain == "relu" else gain


def _check_c01b(shape):
    if len(shape) != 4:
        raise RuntimeError("If c01b is True, only shapes of length 4 are accepted")


class Glorot(Initializer):
    """Glorot/Xavier scaling: ``std = gain * sqrt(2 / ((n1 + n2) * receptive_field))``.

    ``n1, n2 = shape[:2]`` and the receptive field is ``prod(shape[2:])`` (with ``c01b=True``
    the cuda-convnet layout ``(c, 0, 1, b)`` is used instead).
    """

    def __init__(self, initializer, gain=1.0, c01b=False):
        self.initializer = initializer
        self.gain = _resolve_gain(gain)
        self.c01b = c01b

    def sample(self, shape):
        if self.c01b:
            _check_c01b(shape)
            n1, n2 = shape[0], shape[3]
            receptive_field_size = shape[1] * shape[2]
        else:
            if len(shape) < 2:
                raise RuntimeError("This initializer only works with shapes of length >= 2")
            n1, n2 = shape[:2]
            receptive_field_size = np.prod(shape[2:])
        std = self.gain * np.sqrt(2.0 / ((n1 + n2) * receptive_field_size))
        return self.initializer(std=std).sample(shape)


class GlorotNormal(Glorot):
    """Glorot scaling with Gaussian samples."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Normal, gain, c01b)


class GlorotUniform(Glorot):
    """Glorot scaling with uniform samples on ``±sqrt(3) * std`` (Lasagne's default W)."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Uniform, gain, c01b)


class He(Initializer):
    """He scaling: ``std = gain * sqrt(1 / fan_in)``, fan_in ``prod(shape[1:])``
    (``shape[0]`` for 2-D dense weights)."""

    def __init__(self, initializer, gain=1.0, c01b=False):
        self.initializer = initializer
        self.gain = _resolve_gain(gain)
        self.c01b = c01b

    def sample(self, shape):
        if self.c01b:
            _check_c01b(shape)
            fan_in = np.prod(shape[:3])
        elif len(shape) == 2:
            fan_in = shape[0]
        elif len(shape) > 2:
            fan_in = np.prod(shape[1:])
        else:
            raise RuntimeError("This initializer only works with shapes of length >= 2")
        std = self.gain * np.sqrt(1.0 / fan_in)
        return self.initializer(std=std).sample(shape)


class HeNormal(He):
    """He scaling with Gaussian samples."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Normal, gain, c01b)


class HeUniform(He):
    """He scaling with uniform samples."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Uniform, gain, c01b)


class Constant(Initializer):
    """Fills the array with a constant (Lasagne's default bias, 0)."""

    def __init__(self, val=0.0):
        self.val = val

    def sample(self, shape):
        return _floatX(np.ones(shape) * self.val)


class Sparse(Initializer):
    """2-D weights where each column has ``sparsity * n_in`` Gaussian non-zeros."""

    def __init__(self, sparsity=0.1, std=0.01):
        self.sparsity = sparsity
        self.std = std

    def sample(self, shape):
        if len(shape) != 2:
            raise RuntimeError("sparse initializer only works with shapes of length 2")
        w = _floatX(np.zeros(shape))
        n_inputs, n_outputs = shape
        size = int(self.sparsity * n_inputs)
        for k in range(n_outputs):
            indices = np.arange(n_inputs)
            get_rng().shuffle(indices)
            indices = indices[:size]
            w[indices, k] = _floatX(get_rng().normal(0.0, self.std, size=size))
        return w


class Orthogonal(Initializer):
    """Orthogonal matrix (of the flattened trailing axes) scaled by ``gain``."""

    def __init__(self, gain=1.0):
        self.gain = _resolve_gain(gain)

    def sample(self, shape):
        if len(shape) < 2:
            raise RuntimeError("Only shapes of length 2 or more are supported.")
        flat_shape = (shape[0], int(np.prod(shape[1:])))
        a = get_rng().normal(0.0, 1.0, flat_shape)
        u, _, v = np.linalg.svd(a, full_matrices=False)
        q = u if u.shape == flat_shape else v
        return _floatX(self.gain * q.reshape(shape))


class _ShapeError(ValueError, RuntimeError):
    """A shape an initialiser cannot fill (both a ValueError and Lasagne's RuntimeError)."""


class Bilinear(Initializer):
    """Bilinear-interpolation kernels for transposed convolutions (not in Lasagne).

    For a weight of shape ``(in_channels, out_channels, k, k)`` channel ``i`` maps to
    channel ``i`` with the kernel of Caffe's ``surgery.upsample_filt(k)`` and all other pairs
    are zero, so a stride-``k // 2`` deconvolution starts as bilinear upsampling (the FCN
    paper's initialisation). The kernel is symmetric, so ``flip_filters`` does not matter.

    Only such 4-D weights with square kernels have a bilinear meaning: any other shape
    (e.g. a 2-D dense weight) raises an error naming the expected shape. It is a
    ``ValueError`` and also a ``RuntimeError``, the type Lasagne's initialisers raise for
    shapes they cannot fill, so both ``except`` clauses catch it.
    """

    def sample(self, shape):
        if len(shape) != 4 or shape[2] != shape[3]:
            raise _ShapeError(
                "Bilinear needs a 4-D weight shape (in_channels, out_channels, k, k) with a "
                f"square k x k kernel, got {tuple(shape)}"
            )
        size = shape[2]
        factor = (size + 1) // 2
        center = factor - 1 if size % 2 == 1 else factor - 0.5
        taps = 1 - np.abs(np.arange(size) - center) / factor
        kernel = np.outer(taps, taps)
        weights = np.zeros(shape)
        channels = np.arange(min(shape[0], shape[1]))
        weights[channels, channels] = kernel
        return _floatX(weights)
