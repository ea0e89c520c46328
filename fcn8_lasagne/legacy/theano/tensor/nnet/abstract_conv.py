"""``theano.tensor.nnet.abstract_conv`` for unchanged scripts, on :mod:`fcn8_lasagne.ops`.

The names Lasagne-era scripts use: ``conv2d``, ``conv3d``, ``conv2d_grad_wrt_inputs``,
``conv2d_grad_wrt_weights``, ``conv3d_grad_wrt_inputs``, ``conv3d_grad_wrt_weights``,
``conv2d_transpose``, ``get_conv_output_shape``, ``get_conv_shape_1axis`` and the op
factories ``AbstractConv2d``, ``AbstractConv2d_gradInputs`` (Lasagne's
``TransposedConv2DLayer``) and ``AbstractConv2d_gradWeights`` (Lasagne's
``DilatedConv2DLayer``), with ``filter_dilation`` and ``num_groups``. Unshared filters are
not supported (``NotImplementedError``).
"""

from pytensor.graph.basic import Variable

from ..... import ops as _ops
from ...._errors import not_provided_message, shim_getattr

__legacy_shim__ = True

__all__ = ["conv2d", "conv2d_grad_wrt_inputs", "conv2d_grad_wrt_weights", "conv2d_transpose",
           "conv3d", "conv3d_grad_wrt_inputs", "conv3d_grad_wrt_weights",
           "get_conv_output_shape", "get_conv_shape_1axis", "AbstractConv2d",
           "AbstractConv2d_gradInputs", "AbstractConv2d_gradWeights"]


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _check_supported(what, unshared=False):
    if unshared:
        raise NotImplementedError(not_provided_message(
            f"theano.tensor.nnet.{what} with unshared=True", kind="argument"))


def _spatial(shape):
    """A 2-entry shape (ints, symbolic scalars or a symbolic vector) as a 4-entry tuple."""
    if shape is None:
        return None
    if isinstance(shape, Variable):
        return (None, None, shape[0], shape[1])
    shape = tuple(shape)
    return (None, None) + shape[-2:]


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, image_shape=None, filter_dilation=(1, 1),
           num_groups=1, unshared=False, **kwargs):
    """Theano's ``conv2d`` (NCHW); ``image_shape`` is the deprecated name of
    ``input_shape``. See :func:`fcn8_lasagne.ops.conv2d`."""
    if kwargs:
        raise TypeError(f"conv2d() got unexpected keyword arguments {sorted(kwargs)}")
    _check_supported("conv2d", unshared)
    if input_shape is None:
        input_shape = image_shape
    return _ops.conv2d(input, filters, input_shape=input_shape, filter_shape=filter_shape,
                       border_mode=border_mode, subsample=subsample, filter_flip=filter_flip,
                       filter_dilation=filter_dilation, num_groups=num_groups)


def conv3d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1, 1), filter_flip=True, filter_dilation=(1, 1, 1), num_groups=1):
    """Theano's ``conv3d`` (NCDHW); see :func:`fcn8_lasagne.ops.conv3d`."""
    return _ops.conv3d(input, filters, input_shape=input_shape, filter_shape=filter_shape,
                       border_mode=border_mode, subsample=subsample, filter_flip=filter_flip,
                       filter_dilation=filter_dilation, num_groups=num_groups)


def conv2d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1), filter_flip=True,
                           filter_dilation=(1, 1), num_groups=1, unshared=False):
    """Theano's ``conv2d_grad_wrt_inputs``; see :func:`fcn8_lasagne.ops.conv2d_grad_wrt_inputs`."""
    _check_supported("abstract_conv.conv2d_grad_wrt_inputs", unshared)
    return _ops.conv2d_grad_wrt_inputs(output_grad, filters, input_shape,
                                       filter_shape=filter_shape, border_mode=border_mode,
                                       subsample=subsample, filter_flip=filter_flip,
                                       filter_dilation=filter_dilation, num_groups=num_groups)


def conv2d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1), filter_flip=True,
                            filter_dilation=(1, 1), num_groups=1, unshared=False):
    """Theano's ``conv2d_grad_wrt_weights``; see
    :func:`fcn8_lasagne.ops.conv2d_grad_wrt_weights`."""
    _check_supported("abstract_conv.conv2d_grad_wrt_weights", unshared)
    return _ops.conv2d_grad_wrt_weights(input, output_grad, filter_shape,
                                        input_shape=input_shape, border_mode=border_mode,
                                        subsample=subsample, filter_flip=filter_flip,
                                        filter_dilation=filter_dilation, num_groups=num_groups)


conv3d_grad_wrt_inputs = _ops.conv3d_grad_wrt_inputs
conv3d_grad_wrt_weights = _ops.conv3d_grad_wrt_weights


def conv2d_transpose(input, filters, output_shape, filter_shape=None, border_mode="valid",
                     input_dilation=(1, 1), filter_flip=True, filter_dilation=(1, 1),
                     num_groups=1):
    """Theano's ``conv2d_transpose``: the gradient of a convolution of stride
    ``input_dilation`` with respect to its input, of shape ``output_shape``."""
    return conv2d_grad_wrt_inputs(input, filters, output_shape, filter_shape=filter_shape,
                                  border_mode=border_mode, subsample=input_dilation,
                                  filter_flip=filter_flip, filter_dilation=filter_dilation,
                                  num_groups=num_groups)


def get_conv_shape_1axis(image_shape, kernel_shape, border_mode, subsample, dilation=1):
    """Output length of a convolution along one axis (ints or symbolic scalars; ``None`` if
    any argument is ``None``), as Theano computed it."""
    if any(value is None for value in (image_shape, kernel_shape, border_mode, subsample,
                                       dilation)):
        return None
    dilated_kernel = (kernel_shape - 1) * dilation + 1
    if border_mode == "half":
        padding = 2 * (dilated_kernel // 2)
    elif border_mode == "full":
        padding = 2 * (dilated_kernel - 1)
    elif border_mode == "valid":
        padding = 0
    elif isinstance(border_mode, tuple):
        padding = border_mode[0] + border_mode[1]
    else:
        if border_mode < 0:
            raise ValueError("border_mode must be >= 0")
        padding = 2 * border_mode
    return (image_shape + padding - dilated_kernel) // subsample + 1


def get_conv_output_shape(image_shape, kernel_shape, border_mode, subsample,
                          filter_dilation=None):
    """Shape ``(batch, filters, rows, columns)`` of a convolution, as Theano computed it.

    ``border_mode`` is one mode for every axis, or a tuple of one per axis.
    """
    n_spatial = len(image_shape) - 2
    dilation = (1,) * n_spatial if filter_dilation is None else tuple(filter_dilation)
    modes = border_mode if isinstance(border_mode, tuple) else (border_mode,) * n_spatial
    spatial = tuple(get_conv_shape_1axis(image_shape[2 + axis], kernel_shape[-n_spatial + axis],
                                         modes[axis], subsample[axis], dilation[axis])
                    for axis in range(n_spatial))
    return (image_shape[0], kernel_shape[0]) + spatial


class _AbstractConvFactory:
    """Theano's abstract convolution ops as callables building this package's ops."""

    def __init__(self, imshp=None, kshp=None, border_mode="valid", subsample=(1, 1),
                 filter_flip=True, filter_dilation=(1, 1), num_groups=1, unshared=False):
        _check_supported(f"abstract_conv.{type(self).__name__}", unshared)
        self.imshp = None if imshp is None else tuple(imshp)
        self.kshp = None if kshp is None else tuple(kshp)
        self.options = dict(border_mode=border_mode, subsample=tuple(subsample),
                            filter_flip=filter_flip, filter_dilation=_pair(filter_dilation),
                            num_groups=num_groups)


class AbstractConv2d(_AbstractConvFactory):
    """``AbstractConv2d(...)(img, kern)``: the convolution."""

    def __call__(self, img, kern):
        return _ops.conv2d(img, kern, input_shape=self.imshp, filter_shape=self.kshp,
                           **self.options)


class AbstractConv2d_gradInputs(_AbstractConvFactory):  # noqa: N801  (Theano's name)
    """``AbstractConv2d_gradInputs(...)(kern, topgrad, shape)``: the transposed convolution
    giving an input of spatial size ``shape`` (rows, columns)."""

    def __call__(self, kern, topgrad, shape=None):
        return _ops.conv2d_grad_wrt_inputs(topgrad, kern, _spatial(shape), filter_shape=self.kshp,
                                           **self.options)


class AbstractConv2d_gradWeights(_AbstractConvFactory):  # noqa: N801  (Theano's name)
    """``AbstractConv2d_gradWeights(...)(img, topgrad, shape)``: the filter gradient, of
    kernel size ``shape`` (rows, columns)."""

    def __call__(self, img, topgrad, shape):
        return _ops.conv2d_grad_wrt_weights(img, topgrad, _spatial(shape),
                                            input_shape=self.imshp, **self.options)


__getattr__ = shim_getattr(globals(), "theano.tensor.nnet.abstract_conv")
