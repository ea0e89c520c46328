"""Normalisation layers: local response normalisation, batch normalisation and
standardisation (instance and layer normalisation)."""

import pytensor.tensor as pt

from .. import init, nonlinearities
from ..utils import _set_default_update, int_types
from .base import Layer

__all__ = [
    "LocalResponseNormalization2DLayer",
    "BatchNormLayer",
    "batch_norm",
    "StandardizationLayer",
    "instance_norm",
    "layer_norm",
]


class LocalResponseNormalization2DLayer(Layer):
    """Cross-channel local response normalisation of 2-D feature maps (Krizhevsky et al.).

    Pixel by pixel, channel ``i`` becomes ``x_i / (k + alpha * sum_j x_j ** 2) ** beta``,
    the sum running over the ``n`` channels centred on ``i`` (channels beyond the first
    and last count as zeros). The terms are added in channel order to ``k``, as Lasagne
    (after pylearn2) did.

    Parameters
    ----------
    incoming : Layer or tuple
        Shape ``(batch, channels, rows, columns)``.
    alpha : float, default 1e-4
    k : float, default 2
    beta : float, default 0.75
    n : int, default 5
        Number of adjacent channels summed; must be odd (``NotImplementedError``
        otherwise, as in Lasagne).
    """

    def __init__(self, incoming, alpha=1e-4, k=2, beta=0.75, n=5, **kwargs):
        super().__init__(incoming, **kwargs)
        self.alpha = alpha
        self.k = k
        self.beta = beta
        self.n = n
        if n % 2 == 0:
            raise NotImplementedError("Only works with odd n")

    def get_output_shape_for(self, input_shape):
        return input_shape

    def get_output_for(self, input, **kwargs):
        half_n = self.n // 2
        squares = pt.sqr(input)
        # zero channels on both sides, so every window has n terms
        padded = pt.pad(squares, [(0, 0), (half_n, half_n), (0, 0), (0, 0)],
                        mode="constant", constant_values=0)
        channels = input.shape[1]
        scale = self.k
        for i in range(self.n):
            scale = scale + self.alpha * padded[:, i:i + channels, :, :]
        return input / scale ** self.beta


class BatchNormLayer(Layer):
    """Batch normalisation (Ioffe & Szegedy), Lasagne's parameters and running averages.

    ``y = (x - mean) * gamma * inv_std + beta``, normalising over ``axes``. Training uses the
    batch statistics and moves the stored ``mean`` / ``inv_std`` towards them by ``alpha``
    (applied as default updates when the compiled function runs); ``deterministic=True``
    uses the stored averages.

    Parameters
    ----------
    incoming : Layer or tuple
    axes : 'auto', int or tuple of int
        ``'auto'`` normalises over all axes but the second (per channel).
    epsilon : float, default 1e-4
    alpha : float, default 0.1
    beta, gamma, mean, inv_std : initialisers
        ``beta=None`` or ``gamma=None`` leave out the shift or scale.

    Notes
    -----
    Parameters in Lasagne's order and tags: ``beta`` (trainable), ``gamma`` (trainable,
    regularizable), ``mean`` and ``inv_std`` (``batch_norm_stat``, neither trainable nor
    regularizable).
    """

    def __init__(self, incoming, axes="auto", epsilon=1e-4, alpha=0.1,
                 beta=init.Constant(0), gamma=init.Constant(1), mean=init.Constant(0),
                 inv_std=init.Constant(1), **kwargs):
        super().__init__(incoming, **kwargs)
        if axes == "auto":
            axes = (0,) + tuple(range(2, len(self.input_shape)))
        elif isinstance(axes, int_types):
            axes = (axes,)
        self.axes = axes
        self.epsilon = epsilon
        self.alpha = alpha
        shape = [size for axis, size in enumerate(self.input_shape) if axis not in self.axes]
        if any(size is None for size in shape):
            raise ValueError("BatchNormLayer needs specified input sizes for all axes not "
                             "normalized over.")
        self.beta = None if beta is None else self.add_param(
            beta, shape, "beta", trainable=True, regularizable=False)
        self.gamma = None if gamma is None else self.add_param(
            gamma, shape, "gamma", trainable=True, regularizable=True)
        self.mean = self.add_param(mean, shape, "mean", trainable=False, regularizable=False,
                                   batch_norm_stat=True)
        self.inv_std = self.add_param(inv_std, shape, "inv_std", trainable=False,
                                      regularizable=False, batch_norm_stat=True)

    def get_output_for(self, input, deterministic=False, batch_norm_use_averages=None,
                       batch_norm_update_averages=None, **kwargs):
        input_mean = input.mean(self.axes)
        input_inv_std = pt.reciprocal(pt.sqrt(input.var(self.axes) + self.epsilon))
        use_averages = deterministic if batch_norm_use_averages is None \
            else batch_norm_use_averages
        if use_averages:
            mean, inv_std = self.mean, self.inv_std
        else:
            mean, inv_std = input_mean, input_inv_std
        update_averages = (not deterministic) if batch_norm_update_averages is None \
            else batch_norm_update_averages
        if update_averages:
            # clones share the stored arrays; their default updates move the averages,
            # and the 0 * clone terms pull them into the graph without changing the result
            running_mean = self.mean.clone()
            running_inv_std = self.inv_std.clone()
            _set_default_update(running_mean, (1 - self.alpha) * running_mean
                                + self.alpha * input_mean)
            _set_default_update(running_inv_std, (1 - self.alpha) * running_inv_std
                                + self.alpha * input_inv_std)
            mean = mean + 0 * running_mean
            inv_std = inv_std + 0 * running_inv_std
        param_axes = iter(range(input.ndim - len(self.axes)))
        pattern = ["x" if axis in self.axes else next(param_axes) for axis in range(input.ndim)]
        beta = 0 if self.beta is None else self.beta.dimshuffle(pattern)
        gamma = 1 if self.gamma is None else self.gamma.dimshuffle(pattern)
        return (input - mean.dimshuffle(pattern)) * (gamma * inv_std.dimshuffle(pattern)) + beta


def _steal_nonlinearity_and_bias(layer):
    """Set ``layer``'s nonlinearity to the identity and drop its bias; return the
    nonlinearity it had (None if none)."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    return nonlinearity


def _derived_name(kwargs, layer, suffix):
    return kwargs.pop("name", None) or (getattr(layer, "name", None)
                                        and layer.name + suffix)


def batch_norm(layer, **kwargs):
    """Insert a :class:`BatchNormLayer` after ``layer``, moving its bias and nonlinearity.

    ``layer`` loses its bias (redundant before the normalisation) and its nonlinearity,
    which a :class:`NonlinearityLayer` applies after the :class:`BatchNormLayer`. The new
    layers are named ``<name>_bn`` and ``<name>_bn_nonlin`` when ``layer`` has a name
    (``name=`` in ``kwargs`` overrides the first).

    Parameters
    ----------
    layer : Layer
        Modified in place.
    **kwargs
        Passed to :class:`BatchNormLayer`.

    Returns
    -------
    BatchNormLayer or NonlinearityLayer
    """
    from .special import NonlinearityLayer

    nonlinearity = _steal_nonlinearity_and_bias(layer)
    bn_name = _derived_name(kwargs, layer, "_bn")
    layer = BatchNormLayer(layer, name=bn_name, **kwargs)
    if nonlinearity is not None:
        nonlin_name = bn_name and bn_name + "_nonlin"
        layer = NonlinearityLayer(layer, nonlinearity, name=nonlin_name)
    return layer


class StandardizationLayer(Layer):
    """Standardises its input to zero mean and unit variance over ``axes``, per example.

    ``y = (x - mean) / sqrt(var + epsilon)``, the (biased) mean and variance taken over
    ``axes`` for each position of the other axes, at training and test time alike. The
    basis of :func:`instance_norm` and :func:`layer_norm`.

    Parameters
    ----------
    incoming : Layer or tuple
    axes : 'auto', 'spatial', 'features', int or tuple of int
        ``'auto'``: the last axis of a 2-D input, all axes from the third on otherwise;
        ``'spatial'``: all axes from the third on; ``'features'``: all axes but the first.
    epsilon : float, default 1e-4
    """

    def __init__(self, incoming, axes="auto", epsilon=1e-4, **kwargs):
        super().__init__(incoming, **kwargs)
        ndim = len(self.input_shape)
        if axes == "auto":
            axes = (1,) if ndim == 2 else tuple(range(2, ndim))
        elif axes == "spatial":
            axes = tuple(range(2, ndim))
        elif axes == "features":
            axes = tuple(range(1, ndim))
        elif isinstance(axes, int):
            axes = (axes,)
        self.axes = axes
        self.epsilon = epsilon

    def get_output_for(self, input, **kwargs):
        mean = input.mean(self.axes, keepdims=True)
        std = pt.sqrt(input.var(self.axes, keepdims=True) + self.epsilon)
        return (input - mean) / std


def instance_norm(layer, learn_scale=True, learn_bias=True, **kwargs):
    """Instance normalisation (Ulyanov et al.) after ``layer``, before its nonlinearity.

    ``layer`` loses its bias and nonlinearity; on top come a
    :class:`StandardizationLayer` over the spatial axes (``<name>_in``), optionally a
    :class:`ScaleLayer` (``<name>_in_scale``) and a :class:`BiasLayer`
    (``<name>_in_bias``) per channel, and a :class:`NonlinearityLayer`
    (``<name>_in_nonlin``) with the stolen nonlinearity.

    Parameters
    ----------
    layer : Layer
        Modified in place.
    learn_scale : bool, default True
    learn_bias : bool, default True
    **kwargs
        Passed to :class:`StandardizationLayer` (``name`` names it).

    Returns
    -------
    Layer
        The last layer added.
    """
    from .special import BiasLayer, NonlinearityLayer, ScaleLayer

    nonlinearity = _steal_nonlinearity_and_bias(layer)
    in_name = _derived_name(kwargs, layer, "_in")
    layer = StandardizationLayer(layer, axes="spatial", name=in_name, **kwargs)
    if learn_scale:
        layer = ScaleLayer(layer, shared_axes="auto", name=in_name and in_name + "_scale")
    if learn_bias:
        layer = BiasLayer(layer, shared_axes="auto", name=in_name and in_name + "_bias")
    if nonlinearity is not None:
        layer = NonlinearityLayer(layer, nonlinearity, name=in_name and in_name + "_nonlin")
    return layer


def layer_norm(layer, **kwargs):
    """Layer normalisation (Ba et al.) after ``layer``, before its nonlinearity.

    ``layer`` loses its bias and nonlinearity; on top come a
    :class:`StandardizationLayer` over all axes but the first (``<name>_ln``), a
    :class:`ScaleLayer` (``<name>_ln_scale``) and a :class:`BiasLayer`
    (``<name>_ln_bias``) per channel, and a :class:`NonlinearityLayer`
    (``<name>_ln_nonlin``) if ``layer`` had a nonlinearity.

    Parameters
    ----------
    layer : Layer
        Modified in place.
    **kwargs
        Passed to :class:`StandardizationLayer` (``name`` names it).

    Returns
    -------
    Layer
        The last layer added.
    """
    from .special import BiasLayer, NonlinearityLayer, ScaleLayer

    nonlinearity = _steal_nonlinearity_and_bias(layer)
    ln_name = _derived_name(kwargs, layer, "_ln")
    layer = StandardizationLayer(layer, axes="features", name=ln_name, **kwargs)
    layer = ScaleLayer(layer, shared_axes="auto", name=ln_name and ln_name + "_scale")
    layer = BiasLayer(layer, shared_axes="auto", name=ln_name and ln_name + "_bias")
    if nonlinearity is not None:
        layer = NonlinearityLayer(layer, nonlinearity, name=ln_name and ln_name + "_nonlin")
    return layer
