"""Convolution layers (Lasagne's ``lasagne.layers.conv``).

:class:`Conv1DLayer`, :class:`Conv2DLayer`, :class:`Conv3DLayer` (forward convolutions, W of
shape ``(num_filters, num_input_channels // num_groups, *filter_size)``),
:class:`TransposedConv2DLayer` / :class:`Deconv2DLayer`, :class:`TransposedConv3DLayer` /
:class:`Deconv3DLayer` and :class:`DilatedConv2DLayer` (W of shape
``(num_input_channels, num_filters, *filter_size)``), all on :class:`BaseConvLayer`; and
Lasagne's length helpers :func:`conv_output_length` and :func:`conv_input_length`, which
accept the pads of the layers (``'valid'``, ``'full'``, ``'same'``, ints) and nothing else.
The formulas themselves live once, in :mod:`fcn8_lasagne.ops.shapes`.
"""

from .. import init, nonlinearities
from ..ops import shapes
from ..ops.conv import conv2d, conv2d_grad_wrt_inputs, conv3d, conv3d_grad_wrt_inputs
from ..theano_extensions import conv
from ..utils import as_tuple, int_types
from .base import Layer

__all__ = [
    "BaseConvLayer",
    "Conv1DLayer",
    "Conv2DLayer",
    "Conv3DLayer",
    "TransposedConv2DLayer",
    "Deconv2DLayer",
    "DilatedConv2DLayer",
    "TransposedConv3DLayer",
    "Deconv3DLayer",
    "PaddedDilatedConv2DLayer",
]


def _checked_pad(pad):
    """``pad`` if it is one of Lasagne's pads ('valid', 'full', 'same', an int)."""
    if (isinstance(pad, str) and pad in ("valid", "full", "same")) or \
            isinstance(pad, int_types):
        return pad
    raise ValueError(f"Invalid pad: {pad}")


def conv_output_length(input_length, filter_size, stride, pad=0):
    """Output length of a convolution along one axis (Lasagne's helper).

    Parameters
    ----------
    input_length : int, symbolic scalar or None
    filter_size : int
    stride : int
    pad : int, 'valid', 'full' or 'same' (default: 0)
        ``'valid'`` is 0, ``'full'`` pads ``filter_size - 1`` on both sides, ``'same'``
        keeps the input length (for every filter size, as Lasagne's helper; the layers
        allow ``'same'`` for odd filter sizes only).

    Returns
    -------
    int, symbolic scalar or None
        ``ceil((input_length + 2 * pad - filter_size + 1) / stride)``; None for an unknown
        ``input_length``.

    Raises
    ------
    ValueError
        ``'Invalid pad: ...'`` for any other ``pad``, including the ops' ``'half'``.
    """
    if input_length is None:
        return None
    pad = _checked_pad(pad)
    if pad == "same":
        # the input length itself, ceil-divided by the stride
        return shapes.conv_output_length(input_length, 1, stride, 0)
    return shapes.conv_output_length(input_length, filter_size, stride, pad)


def conv_input_length(output_length, filter_size, stride, pad=0):
    """Smallest input length that a convolution maps to ``output_length`` (Lasagne's helper).

    This is the output length of the transposed convolution: ``(output_length - 1) *
    stride - 2 * pad + filter_size``; inputs up to ``stride - 1`` longer give the same
    output length.

    Parameters
    ----------
    output_length : int, symbolic scalar or None
    filter_size : int
    stride : int
    pad : int, 'valid', 'full' or 'same' (default: 0)
        ``'valid'`` is 0, ``'full'`` is ``filter_size - 1``, ``'same'`` is
        ``filter_size // 2``.

    Returns
    -------
    int, symbolic scalar or None

    Raises
    ------
    ValueError
        ``'Invalid pad: ...'`` for any other ``pad``, including ``'half'``.
    """
    if output_length is None:
        return None
    pad = shapes.normalize_pad(_checked_pad(pad), filter_size)
    return shapes.conv_input_length(output_length, filter_size, stride, pad)


def _label(cls, name):
    """How errors name a layer: its class and, if it has one, its name."""
    return f"{cls.__name__} {name!r}" if name else cls.__name__


class BaseConvLayer(Layer):
    """Shared machinery of the convolution layers (Lasagne's ``BaseConvLayer``).

    Subclasses implement :meth:`convolve`; this class cannot be used in a network itself.

    Parameters
    ----------
    incoming : Layer or tuple
        A tensor of ``2 + n`` dimensions: ``(batch_size, num_input_channels, *spatial)``.
        The number of input channels must be known.
    num_filters : int
    filter_size : int or iterable of n ints
    stride : int or iterable of n ints (default: 1)
    pad : int, iterable of n ints, 'full', 'same' or 'valid' (default: 0)
        Symmetric zero padding; ``'full'`` pads ``filter_size - 1``, ``'same'``
        ``filter_size // 2`` (odd filter sizes only), ``'valid'`` is 0.
    untie_biases : bool (default: False)
        One bias per output position (``b`` of shape ``(num_filters, *output_spatial)``)
        instead of one per filter (``(num_filters,)``).
    W : initialiser, array or shared variable (default: GlorotUniform())
        Shape :meth:`get_W_shape`; tagged ``trainable`` and ``regularizable``.
    b : initialiser, array, shared variable or None (default: Constant(0.))
        None makes the layer bias-free; tagged ``trainable`` only.
    nonlinearity : callable or None (default: rectify)
        None means linear (``identity``).
    flip_filters : bool (default: True)
        True for a convolution (filters rotated by 180 degrees), False for a correlation.
    num_groups : int (default: 1)
        Input and output channels are split into this many groups that do not mix; it must
        divide both counts.
    n : int or None (default: None)
        The number of spatial dimensions; None infers it from the input shape.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Raises
    ------
    ValueError
        For an input of the wrong rank (``Expected 4 input dimensions ...``), unknown input
        channels, a stride below 1 or a group count that does not divide the channels;
        every message starts with the layer's class and name.
    NotImplementedError
        For ``pad='same'`` with an even filter size.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, num_groups=1, n=None,
                 **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        if n is None:
            n = len(self.input_shape) - 2
            if n < 1:
                raise ValueError(
                    f"{self._describe()}: a convolution needs at least one spatial "
                    f"dimension, got input shape {self.input_shape!r}")
        elif n != len(self.input_shape) - 2:
            raise ValueError(
                f"{self._describe()}: Tried to create a {n}D convolution layer with input "
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
        if any(s < 1 for s in self.stride):
            raise ValueError(f"{self._describe()}: stride must be >= 1, got {stride!r}")
        self.untie_biases = untie_biases
        if pad == "same" and any(s % 2 == 0 for s in self.filter_size):
            raise NotImplementedError("`same` padding requires odd filter size.")
        if pad == "valid":
            self.pad = as_tuple(0, n)
        elif pad in ("full", "same"):
            self.pad = pad
        else:
            self.pad = as_tuple(pad, n, int_types)
        if (num_groups <= 0 or num_filters % num_groups != 0
                or self.input_shape[1] % num_groups != 0):
            raise ValueError(
                f"{self._describe()}: num_groups (here: {num_groups}) must be positive and "
                f"evenly divide the number of input and output channels (here: "
                f"{self.input_shape[1]} and {num_filters})"
            )
        self.num_groups = num_groups
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
        return _label(type(self), self.name)

    def get_W_shape(self):
        """Shape of the weights: ``(num_filters, num_input_channels // num_groups,
        *filter_size)``."""
        return (self.num_filters, self.input_shape[1] // self.num_groups) + self.filter_size

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
        """The convolution of ``input`` with ``self.W``, without bias and nonlinearity, of
        shape ``self.output_shape``; subclasses implement it."""
        raise NotImplementedError(
            "BaseConvLayer does not implement the convolve() method. You will want to use "
            "a subclass such as Conv2DLayer.")

    def _forward(self, input):
        """``self.convolution`` with the layer's settings (the forward layers' convolve)."""
        extra_kwargs = {"num_groups": self.num_groups} if self.num_groups > 1 else {}
        border_mode = "half" if self.pad == "same" else self.pad
        return self.convolution(input, self.W, self.input_shape, self.get_W_shape(),
                                subsample=self.stride, border_mode=border_mode,
                                filter_flip=self.flip_filters, **extra_kwargs)


class Conv1DLayer(BaseConvLayer):
    """1-D convolution layer: ``(batch, channels, length)`` inputs.

    Parameters as :class:`BaseConvLayer` with ``n=1`` (W of shape ``(num_filters,
    num_input_channels // num_groups, filter_length)``), plus

    convolution : callable (default: :func:`fcn8_lasagne.theano_extensions.conv.conv1d_mc0`)
        Called as ``convolution(input, W, input_shape, W_shape, subsample=stride,
        border_mode=..., filter_flip=flip_filters)`` (and ``num_groups=`` when above 1);
        the other functions of :mod:`fcn8_lasagne.theano_extensions.conv` support fewer
        settings.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True,
                 convolution=conv.conv1d_mc0, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=1, **kwargs)
        self.convolution = convolution

    def convolve(self, input, **kwargs):
        return self._forward(input)


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
    stride : int or (int, int), default (1, 1)
    pad : int, (int, int), 'valid', 'full' or 'same', default 0
    untie_biases : bool, default False
    W : default GlorotUniform()
        Weights of shape ``(num_filters, in_channels // num_groups, kh, kw)``.
    b : default Constant(0.)
        Biases of shape ``(num_filters,)``, tagged not regularizable.
    nonlinearity : default rectify
    flip_filters : bool, default True
    convolution : callable, default :func:`fcn8_lasagne.ops.conv2d`
    **kwargs
        ``num_groups`` (default 1) and ``n`` go to :class:`BaseConvLayer`, ``name`` to
        :class:`Layer`.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, convolution=conv2d,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)
        self.convolution = convolution

    def convolve(self, input, **kwargs):
        return self._forward(input)


class Conv3DLayer(BaseConvLayer):
    """3-D convolution layer: ``(batch, channels, depth, rows, columns)`` inputs.

    Parameters as :class:`Conv2DLayer` with three spatial axes (W of shape
    ``(num_filters, num_input_channels // num_groups, fd, fh, fw)``); ``convolution=None``
    (the default) means :func:`fcn8_lasagne.ops.conv3d`.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, convolution=None,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=3, **kwargs)
        self.convolution = conv3d if convolution is None else convolution

    def convolve(self, input, **kwargs):
        return self._forward(input)


def _refuse_groups(cls, kwargs):
    if kwargs.get("num_groups", 1) != 1:
        raise NotImplementedError(
            f"{_label(cls, kwargs.get('name'))}: num_groups is not supported (Lasagne "
            f"ignored it here), got num_groups={kwargs['num_groups']!r}")


class _TransposedConvLayer(BaseConvLayer):
    """The machinery of :class:`TransposedConv2DLayer` and :class:`TransposedConv3DLayer`:
    the gradient of an ``n``-D convolution with respect to its input."""

    def __init__(self, incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                 nonlinearity, flip_filters, output_size, n, **kwargs):
        _refuse_groups(type(self), kwargs)
        if output_size is not None and not hasattr(output_size, "owner"):
            output_size = as_tuple(output_size, n, int_types)
        self.output_size = output_size
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, n=n, **kwargs)
        self.crop = self.pad
        del self.pad

    def get_W_shape(self):
        """Shape of the weights: ``(num_input_channels, num_filters, *filter_size)``
        (the first two swapped against a forward convolution)."""
        return (self.input_shape[1], self.num_filters) + self.filter_size

    def get_output_shape_for(self, input_shape):
        if self.output_size is not None:
            size = (None,) * self.n if hasattr(self.output_size, "owner") else self.output_size
            return (input_shape[0], self.num_filters) + tuple(size)
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
            output_shape = (None, self.num_filters) + tuple(
                self.output_size[i] for i in range(self.n))
        else:
            # None sizes mean "the smallest output", which the op derives from the input
            output_shape = self.output_shape
        return self._grad_wrt_inputs(input, self.W, output_shape, self.get_W_shape(),
                                     border_mode=border_mode, subsample=self.stride,
                                     filter_flip=not self.flip_filters)


class TransposedConv2DLayer(_TransposedConvLayer):
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
    stride : int or (int, int), default (1, 1)
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

    _grad_wrt_inputs = staticmethod(conv2d_grad_wrt_inputs)

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), crop=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, output_size=None,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, output_size, n=2, **kwargs)


Deconv2DLayer = TransposedConv2DLayer


class TransposedConv3DLayer(_TransposedConvLayer):
    """Transposed 3-D convolution: :class:`TransposedConv2DLayer` with three spatial axes.

    W has the shape ``(in_channels, num_filters, fd, fh, fw)``; ``stride`` defaults to
    ``(1, 1, 1)``, ``flip_filters`` to False; ``output_size`` is an int, three ints or a
    symbolic vector.
    """

    _grad_wrt_inputs = staticmethod(conv3d_grad_wrt_inputs)

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1, 1), crop=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, output_size=None,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, output_size, n=3, **kwargs)


Deconv3DLayer = TransposedConv3DLayer


class DilatedConv2DLayer(BaseConvLayer):
    """2-D convolution with dilated filters (``dilation - 1`` zeros between the taps).

    A valid, unflipped convolution (cross-correlation): output length per axis
    ``in - (filter - 1) * dilation``.

    Parameters
    ----------
    incoming : Layer or tuple
    num_filters : int
    filter_size : int or (int, int)
    dilation : int or (int, int), default (1, 1)
        Each entry >= 1.
    pad : 0, (0, 0) or 'valid', default 0
        Only a valid convolution is supported (add a PadLayer for padding).
    untie_biases : bool, default False
    W : default GlorotUniform()
        Weights of shape ``(num_input_channels, num_filters, kh, kw)`` (swapped against
        :class:`Conv2DLayer`, as Lasagne).
    b : default Constant(0.)
    nonlinearity : default rectify
    flip_filters : False, default False
        Only unflipped filters are supported.

    Notes
    -----
    Lasagne computed the layer as the gradient of a convolution with respect to its
    weights (the filters passed as output gradient); this computes the same sums with
    :func:`fcn8_lasagne.ops.conv2d` and ``filter_dilation``, so that unknown input sizes
    compile with JAX too (``docs/faithfulness.md``). The layer has no ``stride``
    attribute, as in Lasagne.
    """

    def __init__(self, incoming, num_filters, filter_size, dilation=(1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, **kwargs):
        _refuse_groups(type(self), kwargs)
        self.dilation = as_tuple(dilation, 2, int_types)
        if any(d < 1 for d in self.dilation):
            raise ValueError(f"{_label(type(self), kwargs.get('name'))}: dilation must be "
                             f">= 1, got {dilation!r}")
        super().__init__(incoming, num_filters, filter_size, 1, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)
        del self.stride
        if self.pad != (0, 0):
            raise NotImplementedError(
                f"DilatedConv2DLayer requires pad=0 / (0,0) / 'valid', but got {pad!r}. For "
                f"a padded dilated convolution, add a PadLayer.")
        if self.flip_filters:
            raise NotImplementedError("DilatedConv2DLayer requires flip_filters=False.")

    def get_W_shape(self):
        """Shape of the weights: ``(num_input_channels, num_filters, kh, kw)``."""
        return (self.input_shape[1], self.num_filters) + self.filter_size

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_filters) + tuple(
            conv_output_length(size, shapes.dilated_filter_size(filter_size, dilation), 1, 0)
            for size, filter_size, dilation in zip(input_shape[2:], self.filter_size,
                                                   self.dilation)
        )

    def convolve(self, input, **kwargs):
        in_channels, num_filters = self.get_W_shape()[:2]
        return conv2d(input, self.W.dimshuffle(1, 0, 2, 3), self.input_shape,
                      (num_filters, in_channels) + self.filter_size, border_mode="valid",
                      subsample=(1, 1), filter_flip=False, filter_dilation=self.dilation)


class PaddedDilatedConv2DLayer(Conv2DLayer):
    """A :class:`Conv2DLayer` with ``filter_dilation`` (ours, for the dilated ResNets).

    Lasagne's own ``DilatedConv2DLayer`` is valid-only, stride-free and stores ``W`` as
    ``(in, out, kh, kw)``; a dilated ResNet (``models.resnet``) needs a padded, strided
    dilated convolution with PyTorch's ``(out, in, kh, kw)`` weights. This is ``Conv2DLayer`` with the op's ``filter_dilation``:
    output length ``ceil((in + 2 pad - (k - 1) d) / stride)``.
    """

    def __init__(self, incoming, num_filters, filter_size, filter_dilation=(1, 1),
                 **kwargs):
        self.filter_dilation = as_tuple(filter_dilation, 2, int_types)
        if any(d < 1 for d in self.filter_dilation):
            raise ValueError(f"filter_dilation must be >= 1, got {filter_dilation!r}")
        super().__init__(incoming, num_filters, filter_size, **kwargs)

    def get_output_shape_for(self, input_shape):
        pad = self.pad if isinstance(self.pad, tuple) else (self.pad,) * 2
        if not all(isinstance(p, int_types) for p in pad):
            raise ValueError(f"{self._describe()}: a dilated convolution needs integer pads, "
                             f"got {self.pad!r}")
        out = [shapes.conv_output_length(size, shapes.dilated_filter_size(k, d), s, p)
               for size, k, d, s, p in zip(input_shape[2:], self.filter_size,
                                           self.filter_dilation, self.stride, pad)]
        return (input_shape[0], self.num_filters) + tuple(out)

    def convolve(self, input, **kwargs):
        return conv2d(input, self.W, self.input_shape, self.get_W_shape(),
                      border_mode=self.pad, subsample=self.stride,
                      filter_flip=self.flip_filters, filter_dilation=self.filter_dilation)
