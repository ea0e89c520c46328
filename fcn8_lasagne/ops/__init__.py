"""Theano's neural-network ops, rebuilt as PyTensor ``Op`` s.

PyTensor dropped convolution and pooling; these ops bring them back with Theano's names,
arguments and numerics: a BLAS-based CPU implementation, shape inference, gradients made of
ops of the same family, and a JAX translation (:mod:`._jax`) so the same graph compiles with
``mode="JAX"``. Images are channels-first: (batch, channels, *spatial).
"""

from .shapes import conv_input_length, conv_output_length, normalize_pad, pool_output_length
from .conv import conv2d, conv2d_grad_wrt_inputs, conv2d_grad_wrt_weights
from .conv import (conv1d, conv1d_grad_wrt_inputs, conv1d_grad_wrt_weights, conv3d,
                   conv3d_grad_wrt_inputs, conv3d_grad_wrt_weights)
from .pool import pool_2d, pool_3d
from .resize import bilinear_resize, bilinear_upsampling
from .reduce import axis_sum
from .recurrent import lstm_sequence
from .upscale import upscale
from . import dot, elemwise, recompute  # noqa: F401  (register their CPU rewrites)
from ._winograd import get_winograd, set_winograd
from ._backend import load_jax_translations
from ._blas import coretype_advice

load_jax_translations()

__all__ = [
    "conv2d",
    "conv2d_grad_wrt_inputs",
    "conv2d_grad_wrt_weights",
    "conv1d",
    "conv1d_grad_wrt_inputs",
    "conv1d_grad_wrt_weights",
    "conv3d",
    "conv3d_grad_wrt_inputs",
    "conv3d_grad_wrt_weights",
    "pool_2d",
    "pool_3d",
    "bilinear_resize",
    "bilinear_upsampling",
    "axis_sum",
    "lstm_sequence",
    "upscale",
    "conv_output_length",
    "conv_input_length",
    "pool_output_length",
    "normalize_pad",
    "set_winograd",
    "get_winograd",
    "coretype_advice",
]
