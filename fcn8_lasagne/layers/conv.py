"""Convolution layers: :class:`Conv2DLayer` and :class:`TransposedConv2DLayer` (``Deconv2DLayer``)."""

from .. import init, nonlinearities
from ..ops import conv2d, conv2d_grad_wrt_inputs, conv_input_length, conv_output_length
from ..utils import as_tuple, int_types
from .base import Layer

__all__ = ["BaseConvLayer", "Conv2DLayer", "TransposedConv2DLayer", "Deconv2DLayer"]


class BaseConvLayer(Layer):
    """Shared machinery of convolution layers (Lasagne's ``BaseConvLayer``, 2-D only here).

    Parameters
    ----------
    incoming : Layer or tuple
    num_filters : int
    filter_size : int or (int, int)
    stride : int or (int, int)
    pad : int, (int, int), 'valid', 'full' or 'same'
        ``'same'`` needs odd filter sizes.
    untie_biases : bool
        One bias per output position instead of one per filter.
    W, b : initialiser, array or shared variable
        ``b=None`` makes the layer bias-free.
    nonlinearity : callable or None
        ``None`` means linear.
    flip_filters : bool
    """

    def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, n=2, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        if len(self.input_shape) != n + 2:
            raise ValueError(
                f"{self._describe()}: tried to create a {n}D convolution layer with input "
                f"shape {self.input_shape!r}. Expected {n + 2} input dimensions "
                f"(batchsize, channels, {n} spatial dimensions)."
            )
        if self.input_shape[1] is None:
            raise ValueError(
                f"{self._describe()}: the number of input channels must be known, "
                f"got input shape {self.input_shape!r}"
            )
        self.n = n
        self.num_filters = num_filters
        self.filter_size = as_tuple(filter_size, n, int_types)
        self.flip_filters = flip_filters
        self.stride = as_tuple(stride, n, int_types)
        self.untie_biases = untie_biases
        if pad == "same" and any(s % 2 == 0 for s in self.filter_size):
            raise NotImplementedError("`same` padding requires odd filter size.")
        if pad == "valid":
            self.pad = as_tuple(0, n)
        elif pad in ("full", "same"):
            self.pad = pad
        else:
            self.pad = as_tuple(pad, n, int_types)
        self.W = self.add_param(W, self.get_W_shape(), name="W")
        if b is None:
            self.b = None
        else:
            if self.untie_biases:
                biases_shape = (num_filters,) + self.output_shape[2:]
            else:
                biases_shape = (num_filters,)
            self.b = self.add_param(b, biases_shape, name="b", regularizable=False)

    def _describe(self):
        return f"{type(self).__name__} {self.name!r}" if self.name else type(self).__name__

    def get_W_shape(self):
        """Shape of the weight tensor: ``(num_filters, in_channels, kh, kw)``."""
        return (self.num_filters, self.input_shape[1]) + self.filter_size

    def get_output_shape_for(self, input_shape):
        pad = self.pad if isinstance(self.pad, tuple) else (self.pad,) * self.n
        return (input_shape[0], self.num_filters) + tuple(
            conv_output_length(size, filter_size, stride, p)
            for size, filter_size, stride, p in zip(input_shape[2:], self.filter_size,
                                                    self.stride, pad)
        )

    def get_output_for(self, input, **kwargs):
        activation = self.convolve(input, **kwargs)
        if self.name and activation.name is None:
            activation.name = self.name  # run-time shape errors of the op then name the layer
        if self.b is not None:
            if self.untie_biases:
                activation = activation + self.b.dimshuffle(("x",) + tuple(range(self.n + 1)))
            else:
                activation = activation + self.b.dimshuffle(("x", 0) + ("x",) * self.n)
        return self.nonlinearity(activation)

    def convolve(self, input, **kwargs):
        """The convolution without bias and nonlinearity."""
        raise NotImplementedError


class Conv2DLayer(BaseConvLayer):
    """2-D convolution layer, Lasagne's defaults and semantics.

    Output length per axis is ``in + 2 * pad - filter + 1`` ceil-divided by the stride.
    ``flip_filters=True`` (the default) computes a true convolution (kernel rotated 180°);
    ``False`` a cross-correlation, as Caffe, PyTorch and the FCN-8 builders' VGG layers.

    Parameters
    ----------
    incoming : Layer or tuple
    num_filters : int
    filter_size : int or (int, int)
    stride : int or (int, int), default 1
    pad : int, (int, int), 'valid', 'full' or 'same', default 0
    untie_biases : bool, default False
    W : default GlorotUniform()
        Weights of shape ``(num_filters, in_channels, kh, kw)``.
    b : default Constant(0.)
        Biases of shape ``(num_filters,)``, tagged not regularizable.
    nonlinearity : default rectify
    flip_filters : bool, default True
    convolution : callable, default :func:`fcn8_lasagne.ops.conv2d`
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, convolution=conv2d,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)
        self.convolution = convolution

    def convolve(self, input, **kwargs):
        border_mode = "half" if self.pad == "same" else self.pad
        return self.convolution(input, self.W, self.input_shape, self.get_W_shape(),
                                subsample=self.stride, border_mode=border_mode,
                                filter_flip=self.flip_filters)


class TransposedConv2DLayer(BaseConvLayer):
    """Transposed 2-D convolution ("deconvolution"): the gradient of a convolution.

    Output length per axis is ``(in - 1) * stride - 2 * crop + filter`` unless
    ``output_size`` asks for a larger one. With the default ``flip_filters=False`` the layer
    equals PyTorch's ``conv_transpose2d(x, W[:, :, ::-1, ::-1])``.

    Parameters
    ----------
    incoming : Layer or tuple
    num_filters : int
        Output channels.
    filter_size : int or (int, int)
    stride : int or (int, int), default 1
    crop : int, (int, int), 'valid', 'full' or 'same', default 0
        What is cut from the full transposed convolution's border.
    untie_biases : bool, default False
    W : default GlorotUniform()
        Weights of shape ``(in_channels, num_filters, kh, kw)`` (swapped against
        :class:`Conv2DLayer`).
    b : default Constant(0.)
    nonlinearity : default rectify
    flip_filters : bool, default False
    output_size : int, (int, int) or symbolic, optional
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), crop=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, output_size=None,
                 **kwargs):
        if output_size is not None and not hasattr(output_size, "owner"):
            output_size = as_tuple(output_size, 2, int_types)
        self.output_size = output_size
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)
        self.crop = self.pad
        del self.pad

    def get_W_shape(self):
        """Shape of the weight tensor: ``(in_channels, num_filters, kh, kw)``."""
        return (self.input_shape[1], self.num_filters) + self.filter_size

    def get_output_shape_for(self, input_shape):
        if self.output_size is not None:
            size = (None, None) if hasattr(self.output_size, "owner") else self.output_size
            return input_shape[0], self.num_filters, size[0], size[1]
        # called from the base constructor, self.crop is still named self.pad
        crop = getattr(self, "crop", getattr(self, "pad", None))
        crop = crop if isinstance(crop, tuple) else (crop,) * self.n
        return (input_shape[0], self.num_filters) + tuple(
            conv_input_length(size, filter_size, stride, c)
            for size, filter_size, stride, c in zip(input_shape[2:], self.filter_size,
                                                    self.stride, crop)
        )

    def convolve(self, input, **kwargs):
        border_mode = "half" if self.crop == "same" else self.crop
        if hasattr(self.output_size, "owner"):
            output_shape = (None, self.num_filters) + tuple(self.output_size[i] for i in (0, 1))
        else:
            # None sizes mean "the smallest output", which the op derives from the input
            output_shape = self.output_shape
        return conv2d_grad_wrt_inputs(input, self.W, output_shape, self.get_W_shape(),
                                      border_mode=border_mode, subsample=self.stride,
                                      filter_flip=not self.flip_filters)


Deconv2DLayer = TransposedConv2DLayer
