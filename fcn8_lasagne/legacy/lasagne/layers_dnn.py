"""``lasagne.layers.dnn`` for unchanged scripts: Lasagne's cuDNN layer names.

Lasagne's ``dnn`` module held cuDNN versions of its layers, with the arguments and numerics
of the plain ones. Here they are the plain layers of :mod:`fcn8_lasagne.layers` (whose ops
run on the CPU or, compiled with JAX, on a GPU): ``Conv2DDNNLayer`` is ``Conv2DLayer``,
``Pool2DDNNLayer`` is ``Pool2DLayer`` and ``MaxPool2DDNNLayer`` is ``MaxPool2DLayer``.
``batch_norm_dnn`` and ``BatchNormDNNLayer`` are ``batch_norm`` and ``BatchNormLayer``.
"""

from ... import layers as _layers
from .._errors import shim_getattr

__legacy_shim__ = True

__all__ = ["Conv2DDNNLayer", "Pool2DDNNLayer", "MaxPool2DDNNLayer", "BatchNormDNNLayer",
           "batch_norm_dnn"]

Conv2DDNNLayer = _layers.Conv2DLayer
Pool2DDNNLayer = _layers.Pool2DLayer
MaxPool2DDNNLayer = _layers.MaxPool2DLayer
BatchNormDNNLayer = _layers.BatchNormLayer
batch_norm_dnn = _layers.batch_norm

__getattr__ = shim_getattr(globals(), "lasagne.layers.dnn")
