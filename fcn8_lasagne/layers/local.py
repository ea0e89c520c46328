"""Locally connected layers (Lasagne's ``lasagne.layers.local``): convolutions without
weight sharing, one filter per output position."""

import pytensor.tensor as pt

from .. import init, nonlinearities
from ..theano_extensions.padding import pad as pad_tensor
from .conv import Conv2DLayer

__all__ = ["LocallyConnected2DLayer"]


class LocallyConnected2DLayer(Conv2DLayer):
    """2-D locally connected layer: a 'same'-padded, unit-stride convolution whose filters
    differ at every output position.

    ``out[b, f, i, j] = sum_{c, u, v} x[b, c, i + u - kh // 2, j + v - kw // 2] *
    W[f, c, u', v', i, j]`` (zero outside the input), with ``u' = kh - 1 - u`` when
    ``flip_filters`` (as a convolution) and ``u' = u`` otherwise (likewise ``v'``). With
    ``channelwise=True`` output channel ``f`` reads input channel ``f`` only and W has no
    channel axis.

    Parameters
    ----------
    incoming : Layer or tuple
        ``(batch_size, num_input_channels, rows, columns)``; everything but the batch size
        must be known.
    num_filters : int
    filter_size : int or (int, int)
        Odd sizes only ('same' padding).
    stride : 1 or (1, 1) (default: (1, 1))
        Only unit stride is supported.
    pad : 'same' (default: 'same')
        Only 'same' padding is supported.
    untie_biases : bool (default: False)
    W : initialiser, array or shared variable (default: GlorotUniform())
        ``(num_filters, num_input_channels, kh, kw, rows, columns)``, or with
        ``channelwise`` ``(num_filters, kh, kw, rows, columns)``.
    b : initialiser, array, shared variable or None (default: Constant(0.))
        ``(num_filters,)``, or ``(num_filters, rows, columns)`` with ``untie_biases``.
    nonlinearity : callable or None (default: rectify)
    flip_filters : bool (default: True)
    channelwise : bool (default: False)
        Each filter sees only the input channel of its own index; ``num_filters`` must
        then equal the number of input channels.
    **kwargs
        Passed to :class:`Conv2DLayer`.

    Raises
    ------
    ValueError
        For an input shape with unknown non-batch sizes, or ``channelwise`` with
        ``num_filters`` other than the number of input channels.
    NotImplementedError
        For a stride other than 1 or a pad other than 'same' (or an even filter size).
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad="same",
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, channelwise=False,
                 **kwargs):
        self.channelwise = channelwise
        super().__init__(incoming, num_filters, filter_size, stride=stride, pad=pad,
                         untie_biases=untie_biases, W=W, b=b, nonlinearity=nonlinearity,
                         flip_filters=flip_filters, **kwargs)
        if self.stride != (1, 1):
            raise NotImplementedError(
                f"LocallyConnected2DLayer requires stride=1 / (1, 1), but got {stride!r}.")
        if self.pad != "same":
            raise NotImplementedError(
                f"LocallyConnected2DLayer requires pad='same', but got {pad!r}.")

    def get_W_shape(self):
        """``(num_filters, num_input_channels, kh, kw, rows, columns)``, or
        ``(num_filters, kh, kw, rows, columns)`` with ``channelwise``."""
        if any(s is None for s in self.input_shape[1:]):
            raise ValueError(
                f"A LocallyConnected2DLayer requires a fixed input shape (except for the "
                f"batch size). Got {self.input_shape!r}.")
        num_input_channels = self.input_shape[1]
        output_rows_columns = self.get_output_shape_for(self.input_shape)[-2:]
        if self.channelwise:
            if self.num_filters != num_input_channels:
                raise ValueError(
                    f"num_filters and the number of input channels should match when "
                    f"channelwise is true, but got num_filters={self.num_filters!r} and "
                    f"{num_input_channels} input channels")
            return (self.num_filters,) + self.filter_size + output_rows_columns
        return (self.num_filters, num_input_channels) + self.filter_size + output_rows_columns

    def _tap(self, padded, u, v):
        """The contribution of filter tap (u, v): (batch, filters, rows, columns)."""
        rows, columns = self.output_shape[-2:]
        kh, kw = self.filter_size
        wu, wv = (kh - 1 - u, kw - 1 - v) if self.flip_filters else (u, v)
        window = padded[:, :, u:u + rows, v:v + columns]
        if self.channelwise:
            return window * self.W[:, wu, wv, :, :]
        return (window[:, None, :, :, :] * self.W[:, :, wu, wv, :, :]).sum(axis=2)

    def convolve(self, input, **kwargs):
        kh, kw = self.filter_size
        # the known sizes made static, so that the padding's shapes are too
        input = pt.specify_shape(input, (None,) + tuple(self.input_shape[1:]))
        padded = pad_tensor(input, (kh // 2, kw // 2), batch_ndim=2)
        # the centre tap first, then the others in row-major order (as Lasagne sums them)
        conved = self._tap(padded, kh // 2, kw // 2)
        for u in range(kh):
            for v in range(kw):
                if (u, v) != (kh // 2, kw // 2):
                    conved = conved + self._tap(padded, u, v)
        return conved

