"""Normalisation layers: :class:`BatchNormLayer`."""

import pytensor.tensor as pt

from .. import init
from .base import Layer

__all__ = ["BatchNormLayer", "batch_norm"]


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
    """

    def __init__(self, incoming, axes="auto", epsilon=1e-4, alpha=0.1,
                 beta=init.Constant(0), gamma=init.Constant(1), mean=init.Constant(0),
                 inv_std=init.Constant(1), **kwargs):
        super().__init__(incoming, **kwargs)
        if axes == "auto":
            axes = (0,) + tuple(range(2, len(self.input_shape)))
        elif isinstance(axes, int):
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
        self.mean = self.add_param(mean, shape, "mean", trainable=False, regularizable=False)
        self.inv_std = self.add_param(inv_std, shape, "inv_std", trainable=False,
                                      regularizable=False)

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
            running_mean.default_update = ((1 - self.alpha) * running_mean
                                           + self.alpha * input_mean)
            running_inv_std.default_update = ((1 - self.alpha) * running_inv_std
                                              + self.alpha * input_inv_std)
            mean = mean + 0 * running_mean
            inv_std = inv_std + 0 * running_inv_std
        param_axes = iter(range(input.ndim - len(self.axes)))
        pattern = ["x" if axis in self.axes else next(param_axes) for axis in range(input.ndim)]
        beta = 0 if self.beta is None else self.beta.dimshuffle(pattern)
        gamma = 1 if self.gamma is None else self.gamma.dimshuffle(pattern)
        return (input - mean.dimshuffle(pattern)) * (gamma * inv_std.dimshuffle(pattern)) + beta


def batch_norm(layer, **kwargs):
    """Insert a :class:`BatchNormLayer` after ``layer``, moving its bias and nonlinearity."""
    from .special import NonlinearityLayer
    from .. import nonlinearities

    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    bn_name = kwargs.pop("name", None) or (layer.name and layer.name + "_bn")
    layer = BatchNormLayer(layer, name=bn_name, **kwargs)
    if nonlinearity is not None:
        nonlin_name = bn_name and bn_name + "_nonlin"
        layer = NonlinearityLayer(layer, nonlinearity, name=nonlin_name)
    return layer
