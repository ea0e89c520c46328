"""
Update dictionaries for gradient-based training, with Lasagne's names,
signatures, defaults and formulas (``lasagne.updates``).

Each update function takes a scalar loss (or a list of gradients) and a list
of shared parameters, and returns an ``OrderedDict`` mapping every shared
variable to its update expression, ready for
``pytensor.function(..., updates=updates)``:

.. autosummary::
    :nosignatures:

    sgd
    momentum
    nesterov_momentum
    adagrad
    rmsprop
    adadelta
    adam
    adamax
    amsgrad

The dilated-ResNet FCNs train with SGD, momentum and weight decay, per-parameter
learning-rate multipliers and a poly schedule, as torchvision's
``references/segmentation`` (``torch.optim.SGD``) and Gluon-CV's
``scripts/segmentation/train.py`` (MXNet's ``sgd`` with ``lr_mult``) do:

.. autosummary::
    :nosignatures:

    sgd_weight_decay
    poly_learning_rate
    PolyLearningRate

Momentum can be added to any of them, and norms can be constrained:

.. autosummary::
    :nosignatures:

    apply_momentum
    apply_nesterov_momentum
    norm_constraint
    total_norm_constraint

Optimiser state
---------------
Stateful methods keep their state in new shared variables (zeros of the
parameter's shape, dtype and static shape, i.e. of its type, so that the
compiled update can write parameter and state in place), created in a fixed order and
named after their parameter, e.g. ``conv1_1.W_adam_m``, ``conv1_1.W_adam_v``
and ``adam_t``. Every key of the returned dictionary that is not a parameter
is such a state variable. :func:`get_update_state` lists them in dictionary
order; :func:`get_update_state_values` / :func:`set_update_state_values`
read and write their values, so a trainer can save the optimiser state next
to the weights (e.g. ``np.savez(path, *get_update_state_values(updates,
params))``) and restore it after building the same updates again.

Hyperparameters
---------------
Learning rates and the other hyperparameters may be Python numbers or
symbolic scalars (e.g. shared variables, to change them without
recompiling). Python numbers are converted to the parameter's dtype, and
every update expression is cast to the dtype of the variable it updates, so
float32 parameters are updated in float32 whatever ``floatX`` is (as Theano
did with ``floatX=float32``).

Examples
--------
>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> from fcn8_lasagne.updates import adam
>>> W = pytensor.shared(np.ones(3, dtype='float32'), name='W')
>>> loss = pt.sum(W ** 2)
>>> updates = adam(loss, [W], learning_rate=1e-4)
>>> train = pytensor.function([], loss, updates=updates)
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

from . import utils

__all__ = [
    "get_or_compute_grads",
    "sgd",
    "apply_momentum",
    "momentum",
    "apply_nesterov_momentum",
    "nesterov_momentum",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "adamax",
    "amsgrad",
    "sgd_weight_decay",
    "poly_learning_rate",
    "PolyLearningRate",
    "norm_constraint",
    "total_norm_constraint",
    "get_update_state",
    "get_update_state_values",
    "set_update_state_values",
]


def get_or_compute_grads(loss_or_grads, params):
    """Return the gradients of a loss, or check a given list of gradients.

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The parameters to return gradients for.

    Returns
    -------
    list of symbolic tensors
        `loss_or_grads` itself (the same object) if it is a list of gradients (a tuple,
        which Lasagne would have tried to differentiate, is accepted and returned too),
        else ``pytensor.grad(loss_or_grads, params)``.

    Raises
    ------
    ValueError
        If an element of `params` is not a shared variable (it could be
        differentiated but never updated), or if the number of gradients
        differs from the number of parameters.
    """
    params = list(params)
    if any(not isinstance(param, SharedVariable) for param in params):
        raise ValueError(
            "params must contain shared variables only. If it contains "
            "arbitrary parameter expressions, then "
            "fcn8_lasagne.utils.collect_shared_vars() may help you.")
    if isinstance(loss_or_grads, (list, tuple)):
        if len(loss_or_grads) != len(params):
            raise ValueError("Got %d gradient expressions for %d parameters"
                             % (len(loss_or_grads), len(params)))
        return loss_or_grads
    return pytensor.grad(loss_or_grads, params)


def _hyperparameter(value, dtype):
    """A hyperparameter as a tensor of `dtype`.

    Python and NumPy numbers become constants of `dtype` (so that they do
    not upcast float32 arithmetic); symbolic scalars are cast to it.
    """
    if isinstance(value, Variable):
        return pt.cast(value, dtype)
    return pt.constant(np.asarray(value, dtype=dtype))


def _state_variable(param, suffix):
    """A shared zero tensor of `param`'s type, named ``<param name>_<suffix>``.

    The same static shape as `param` (``param.type.shape``) lets PyTensor write the
    state's update in place, as it does the parameter's when the gradient's type matches.
    """
    value = param.get_value(borrow=True)
    name = "%s_%s" % (param.name, suffix) if param.name else suffix
    return pytensor.shared(np.zeros(value.shape, dtype=value.dtype),
                           name=name, shape=param.type.shape)


def _step_counter(name):
    """A shared scalar step counter of dtype floatX starting at 0 (Lasagne's ``t``)."""
    return pytensor.shared(utils.floatX(0.0), name=name)


def _assign(updates, variable, expression):
    """Store `expression`, cast to `variable`'s dtype, as the update of `variable`."""
    updates[variable] = pt.cast(expression, variable.dtype)


def sgd(loss_or_grads, params, learning_rate):
    """Stochastic gradient descent.

    * ``param := param - learning_rate * gradient``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.

    Returns
    -------
    OrderedDict
        Each parameter mapped to its update expression.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        step_size = _hyperparameter(learning_rate, param.dtype)
        _assign(updates, param, param - step_size * grad)
    return updates


def apply_momentum(updates, params=None, momentum=0.9):
    """Add classical momentum to an update dictionary.

    * ``velocity := momentum * velocity + updates[param] - param``
    * ``param := param + velocity``

    Parameters
    ----------
    updates : OrderedDict
        Parameters mapped to update expressions.
    params : iterable of shared variables, optional
        The parameters to apply momentum to; all keys of `updates` if
        omitted.
    momentum : float or symbolic scalar
        The momentum coefficient.

    Returns
    -------
    OrderedDict
        A copy of `updates` with momentum for every parameter in `params`;
        each velocity is a new shared variable named ``<param>_velocity``.

    Notes
    -----
    Momentum also enlarges the steps; scaling the learning rate by
    ``1 - momentum`` compensates.
    """
    if params is None:
        params = list(updates.keys())
    updates = OrderedDict(updates)
    for param in params:
        coefficient = _hyperparameter(momentum, param.dtype)
        velocity = _state_variable(param, "velocity")
        new_param = coefficient * velocity + updates[param]
        _assign(updates, velocity, new_param - param)
        _assign(updates, param, new_param)
    return updates


def momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """Stochastic gradient descent with classical momentum.

    * ``velocity := momentum * velocity - learning_rate * gradient``
    * ``param := param + velocity``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.
    momentum : float or symbolic scalar
        The momentum coefficient.

    Returns
    -------
    OrderedDict
        Each parameter and velocity mapped to its update expression.
    """
    updates = sgd(loss_or_grads, params, learning_rate)
    return apply_momentum(updates, momentum=momentum)


def apply_nesterov_momentum(updates, params=None, momentum=0.9):
    """Add Nesterov momentum to an update dictionary.

    * ``velocity := momentum * velocity + updates[param] - param``
    * ``param := param + momentum * velocity + updates[param] - param``

    This is the formulation of
    https://github.com/lisa-lab/pylearn2/pull/136#issuecomment-10381617,
    which evaluates the gradient at the current parameters.

    Parameters
    ----------
    updates : OrderedDict
        Parameters mapped to update expressions.
    params : iterable of shared variables, optional
        The parameters to apply momentum to; all keys of `updates` if
        omitted.
    momentum : float or symbolic scalar
        The momentum coefficient.

    Returns
    -------
    OrderedDict
        A copy of `updates` with Nesterov momentum for every parameter in
        `params`; each velocity is a new shared variable named
        ``<param>_velocity``.
    """
    if params is None:
        params = list(updates.keys())
    updates = OrderedDict(updates)
    for param in params:
        coefficient = _hyperparameter(momentum, param.dtype)
        velocity = _state_variable(param, "velocity")
        new_velocity = coefficient * velocity + updates[param] - param
        _assign(updates, velocity, new_velocity)
        _assign(updates, param, coefficient * new_velocity + updates[param])
    return updates


def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """Stochastic gradient descent with Nesterov momentum.

    * ``velocity := momentum * velocity - learning_rate * gradient``
    * ``param := param + momentum * velocity - learning_rate * gradient``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.
    momentum : float or symbolic scalar
        The momentum coefficient.

    Returns
    -------
    OrderedDict
        Each parameter and velocity mapped to its update expression.
    """
    updates = sgd(loss_or_grads, params, learning_rate)
    return apply_nesterov_momentum(updates, momentum=momentum)


def adagrad(loss_or_grads, params, learning_rate=1.0, epsilon=1e-6):
    """Adagrad: divide by the root of the accumulated squared gradients.

    * ``accu := accu + gradient ** 2``
    * ``param := param - learning_rate * gradient / sqrt(accu + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.
    epsilon : float or symbolic scalar
        Added under the square root for numerical stability.

    Returns
    -------
    OrderedDict
        Each parameter and accumulator (``<param>_adagrad_accu``) mapped to
        its update expression.

    References
    ----------
    .. [1] Duchi, J., Hazan, E., & Singer, Y. (2011): Adaptive subgradient
           methods for online learning and stochastic optimization.
           JMLR, 12:2121-2159.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        step_size = _hyperparameter(learning_rate, param.dtype)
        eps = _hyperparameter(epsilon, param.dtype)
        accu = _state_variable(param, "adagrad_accu")
        new_accu = accu + grad ** 2
        _assign(updates, accu, new_accu)
        _assign(updates, param, param - step_size * grad / pt.sqrt(new_accu + eps))
    return updates


def rmsprop(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-6):
    """RMSProp: divide by a moving average of the squared gradients.

    * ``accu := rho * accu + (1 - rho) * gradient ** 2``
    * ``param := param - learning_rate * gradient / sqrt(accu + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.
    rho : float or symbolic scalar
        Decay factor of the moving average, in (0, 1).
    epsilon : float or symbolic scalar
        Added under the square root for numerical stability.

    Returns
    -------
    OrderedDict
        Each parameter and accumulator (``<param>_rmsprop_accu``) mapped to
        its update expression.

    References
    ----------
    .. [1] Tieleman, T. and Hinton, G. (2012): Neural Networks for Machine
           Learning, Lecture 6.5 - rmsprop. Coursera.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        step_size = _hyperparameter(learning_rate, param.dtype)
        decay = _hyperparameter(rho, param.dtype)
        eps = _hyperparameter(epsilon, param.dtype)
        accu = _state_variable(param, "rmsprop_accu")
        new_accu = decay * accu + (1 - decay) * grad ** 2
        _assign(updates, accu, new_accu)
        _assign(updates, param, param - step_size * grad / pt.sqrt(new_accu + eps))
    return updates


def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6):
    """Adadelta: scale by the ratio of accumulated updates to gradients.

    * ``accu := rho * accu + (1 - rho) * gradient ** 2``
    * ``update = gradient * sqrt(delta_accu + epsilon) / sqrt(accu + epsilon)``
      (with the previous ``delta_accu``)
    * ``param := param - learning_rate * update``
    * ``delta_accu := rho * delta_accu + (1 - rho) * update ** 2``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        Scales the steps; the paper uses none (1.0).
    rho : float or symbolic scalar
        Decay factor of both moving averages, in (0, 1).
    epsilon : float or symbolic scalar
        Added under the square roots; it makes the first step non-zero.

    Returns
    -------
    OrderedDict
        Each parameter and its two accumulators (``<param>_adadelta_accu``,
        ``<param>_adadelta_delta_accu``) mapped to their update expressions.

    References
    ----------
    .. [1] Zeiler, M. D. (2012): ADADELTA: An Adaptive Learning Rate Method.
           arXiv:1212.5701.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        step_size = _hyperparameter(learning_rate, param.dtype)
        decay = _hyperparameter(rho, param.dtype)
        eps = _hyperparameter(epsilon, param.dtype)
        accu = _state_variable(param, "adadelta_accu")
        delta_accu = _state_variable(param, "adadelta_delta_accu")

        new_accu = decay * accu + (1 - decay) * grad ** 2
        _assign(updates, accu, new_accu)
        update = grad * pt.sqrt(delta_accu + eps) / pt.sqrt(new_accu + eps)
        _assign(updates, param, param - step_size * update)
        _assign(updates, delta_accu, decay * delta_accu + (1 - decay) * update ** 2)
    return updates


def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999,
         epsilon=1e-8):
    """Adam, as in Lasagne (and Kingma & Ba's Algorithm 1 reordered).

    * ``t := t + 1``
    * ``a_t = learning_rate * sqrt(1 - beta2 ** t) / (1 - beta1 ** t)``
    * ``m := beta1 * m + (1 - beta1) * gradient``
    * ``v := beta2 * v + (1 - beta2) * gradient ** 2``
    * ``param := param - a_t * m / (sqrt(v) + epsilon)``

    `epsilon` is added to ``sqrt(v)`` *before* the bias correction is
    applied (through ``a_t``); PyTorch adds it to the bias-corrected
    ``sqrt(v / (1 - beta2 ** t))``, so the two differ while ``sqrt(v)`` is
    comparable to `epsilon`.

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.
    beta1 : float or symbolic scalar
        Decay rate of the first-moment estimate.
    beta2 : float or symbolic scalar
        Decay rate of the second-moment estimate.
    epsilon : float or symbolic scalar
        Constant for numerical stability.

    Returns
    -------
    OrderedDict
        For each parameter, in order: its first moment
        (``<param>_adam_m``), its second moment (``<param>_adam_v``) and the
        parameter itself; then the step counter ``adam_t`` (floatX scalar).

    References
    ----------
    .. [1] Kingma, D. P. and Ba, J. (2014): Adam: A Method for Stochastic
           Optimization. arXiv:1412.6980.
    """
    return _adam_updates(loss_or_grads, params, learning_rate, beta1, beta2, epsilon,
                         prefix="adam", keep_maximum=False)


def _adam_updates(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, prefix,
                  keep_maximum):
    """Adam's updates, or AMSGrad's when ``keep_maximum`` (the denominator then uses the
    largest second moment so far); state variables are named ``<param>_<prefix>_m`` etc."""
    grads = get_or_compute_grads(loss_or_grads, params)
    previous_step = _step_counter(f"{prefix}_t")
    step = previous_step + 1
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        dtype = param.dtype
        t = pt.cast(step, dtype)
        b1 = _hyperparameter(beta1, dtype)
        b2 = _hyperparameter(beta2, dtype)
        step_size = (_hyperparameter(learning_rate, dtype)
                     * pt.sqrt(1 - b2 ** t) / (1 - b1 ** t))
        first_moment = _state_variable(param, f"{prefix}_m")
        second_moment = _state_variable(param, f"{prefix}_v")

        new_first_moment = b1 * first_moment + (1 - b1) * grad
        new_second_moment = b2 * second_moment + (1 - b2) * grad ** 2
        denominator_moment = new_second_moment
        if keep_maximum:
            max_second_moment = _state_variable(param, f"{prefix}_v_hat")
            denominator_moment = pt.maximum(max_second_moment, new_second_moment)
        change = (step_size * new_first_moment
                  / (pt.sqrt(denominator_moment) + _hyperparameter(epsilon, dtype)))

        _assign(updates, first_moment, new_first_moment)
        _assign(updates, second_moment, new_second_moment)
        if keep_maximum:
            _assign(updates, max_second_moment, denominator_moment)
        _assign(updates, param, param - change)
    _assign(updates, previous_step, step)
    return updates


def adamax(loss_or_grads, params, learning_rate=0.002, beta1=0.9, beta2=0.999,
           epsilon=1e-8):
    """Adamax, the infinity-norm variant of Adam.

    * ``t := t + 1``
    * ``a_t = learning_rate / (1 - beta1 ** t)``
    * ``m := beta1 * m + (1 - beta1) * gradient``
    * ``u := max(beta2 * u, abs(gradient))``
    * ``param := param - a_t * m / (u + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
        The step size.
    beta1 : float or symbolic scalar
        Decay rate of the first-moment estimate.
    beta2 : float or symbolic scalar
        Decay rate of the weighted infinity norm.
    epsilon : float or symbolic scalar
        Constant for numerical stability.

    Returns
    -------
    OrderedDict
        For each parameter, in order: ``<param>_adamax_m``,
        ``<param>_adamax_u`` and the parameter; then the step counter
        ``adamax_t``.

    References
    ----------
    .. [1] Kingma, D. P. and Ba, J. (2014): Adam: A Method for Stochastic
           Optimization. arXiv:1412.6980.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    previous_step = _step_counter("adamax_t")
    step = previous_step + 1
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        dtype = param.dtype
        b1 = _hyperparameter(beta1, dtype)
        b2 = _hyperparameter(beta2, dtype)
        step_size = _hyperparameter(learning_rate, dtype) / (1 - b1 ** pt.cast(step, dtype))
        first_moment = _state_variable(param, "adamax_m")
        infinity_norm = _state_variable(param, "adamax_u")

        new_first_moment = b1 * first_moment + (1 - b1) * grad
        new_infinity_norm = pt.maximum(b2 * infinity_norm, abs(grad))
        change = (step_size * new_first_moment
                  / (new_infinity_norm + _hyperparameter(epsilon, dtype)))

        _assign(updates, first_moment, new_first_moment)
        _assign(updates, infinity_norm, new_infinity_norm)
        _assign(updates, param, param - change)
    _assign(updates, previous_step, step)
    return updates


def amsgrad(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999,
            epsilon=1e-8):
    """AMSGrad (Reddi, Kale & Kumar, 2018), as in Lasagne: Adam whose denominator uses the
    largest second moment seen so far.

    * ``t := t + 1``
    * ``a_t = learning_rate * sqrt(1 - beta2 ** t) / (1 - beta1 ** t)``
    * ``m := beta1 * m + (1 - beta1) * gradient``
    * ``v := beta2 * v + (1 - beta2) * gradient ** 2``
    * ``v_hat := max(v_hat, v)``
    * ``param := param - a_t * m / (sqrt(v_hat) + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
        A scalar loss, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update.
    learning_rate : float or symbolic scalar
    beta1 : float or symbolic scalar
        Decay rate of the first-moment estimate.
    beta2 : float or symbolic scalar
        Decay rate of the second-moment estimate.
    epsilon : float or symbolic scalar
        Constant for numerical stability.

    Returns
    -------
    OrderedDict
        For each parameter, in order: its first moment (``<param>_amsgrad_m``), its second
        moment (``<param>_amsgrad_v``), the running maximum of the second moment
        (``<param>_amsgrad_v_hat``) and the parameter itself; then the step counter
        ``amsgrad_t`` (floatX scalar).

    References
    ----------
    .. [1] Reddi, S. J., Kale, S. and Kumar, S. (2018): On the Convergence of Adam and
           Beyond. ICLR. https://openreview.net/forum?id=ryQu7f-RZ
    """
    return _adam_updates(loss_or_grads, params, learning_rate, beta1, beta2, epsilon,
                         prefix="amsgrad", keep_maximum=True)


_SGD_CONVENTIONS = ("torch", "mxnet")


def _multiplier(multipliers, param, what):
    if not multipliers:
        return 1.0
    value = multipliers.get(param, 1.0)
    if isinstance(value, Variable):
        return value
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError("%s of %s must be a finite number >= 0, got %r"
                         % (what, param.name or param, value))
    return value


def sgd_weight_decay(loss_or_grads, params, learning_rate, momentum=0.9, weight_decay=1e-4,
                     lr_multipliers=None, weight_decay_multipliers=None, convention="torch"):
    """SGD with momentum, L2 weight decay and per-parameter learning-rate multipliers.

    With ``lr = learning_rate * lr_multipliers[param]`` and
    ``wd = weight_decay * weight_decay_multipliers[param]`` (multipliers default to 1):

    * ``convention='torch'`` (``torch.optim.SGD``, dampening 0, not Nesterov)::

          g := gradient + wd * param
          velocity := momentum * velocity + g
          param := param - lr * velocity

    * ``convention='mxnet'`` (MXNet's ``sgd_mom_update``, which Gluon-CV trains with)::

          velocity := momentum * velocity - lr * (gradient + wd * param)
          param := param + velocity

    The two give the same steps while the learning rate stays constant; under a schedule
    torch's velocity carries unscaled gradients (each step scaled by the current rate)
    and MXNet's carries steps already scaled by the rates they were taken with.

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic tensors
    params : list of shared variables
    learning_rate : float or symbolic scalar
        The base rate; a shared scalar (e.g. :attr:`PolyLearningRate.variable`) changes
        it without recompiling.
    momentum : float or symbolic scalar
    weight_decay : float or symbolic scalar
        Both originals decay every parameter, BN scales and shifts and biases included
        (Gluon-CV's ``--no-wd`` sets ``wd_mult = 0`` for ``beta``, ``gamma`` and ``bias``;
        pass that as `weight_decay_multipliers`).
    lr_multipliers : dict or None
        Parameter -> multiplier of the learning rate (Gluon-CV: 10 for both heads;
        torchvision: 10 for the aux head only).
    weight_decay_multipliers : dict or None
        Parameter -> multiplier of the weight decay.
    convention : {'torch', 'mxnet'}
        Where the learning rate enters the momentum (above).

    Returns
    -------
    OrderedDict
        Each parameter and its velocity (``<param>_velocity``) mapped to its update.
    """
    if convention not in _SGD_CONVENTIONS:
        raise ValueError("convention must be one of %s, got %r"
                         % (", ".join(map(repr, _SGD_CONVENTIONS)), convention))
    params = list(params)
    known = {id(param) for param in params}
    for what, multipliers in (("lr_multipliers", lr_multipliers),
                              ("weight_decay_multipliers", weight_decay_multipliers)):
        strangers = [key for key in (multipliers or {}) if id(key) not in known]
        if strangers:
            raise ValueError("%s names %d variable(s) that are not among the params, e.g. %s"
                             % (what, len(strangers), strangers[0].name or strangers[0]))
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        dtype = param.dtype
        step_size = _hyperparameter(learning_rate, dtype) * _hyperparameter(
            _multiplier(lr_multipliers, param, "the learning-rate multiplier"), dtype)
        decay = _hyperparameter(weight_decay, dtype) * _hyperparameter(
            _multiplier(weight_decay_multipliers, param, "the weight-decay multiplier"), dtype)
        coefficient = _hyperparameter(momentum, dtype)
        velocity = _state_variable(param, "velocity")
        decayed = grad + decay * param
        if convention == "torch":
            new_velocity = coefficient * velocity + decayed
            new_param = param - step_size * new_velocity
        else:
            new_velocity = coefficient * velocity - step_size * decayed
            new_param = param + new_velocity
        _assign(updates, param, new_param)
        _assign(updates, velocity, new_velocity)
    return updates


_POLY_CONVENTIONS = ("torch", "gluoncv")


def poly_learning_rate(base_lr, iteration, max_iterations, power=0.9, convention="torch"):
    """The poly learning rate of the step with 0-based index `iteration`.

    * ``convention='torch'`` (torchvision's ``LambdaLR``)::

          base_lr * (1 - iteration / max_iterations) ** power

      so the first step uses ``base_lr`` and the last a small positive rate.
    * ``convention='gluoncv'`` (``gluoncv.utils.LRScheduler('poly')``, called by MXNet with
      the 1-based update count)::

          T = min(iteration + 1, max_iterations - 1)
          base_lr * (1 - T / (max_iterations - 1)) ** power

      so the first step is already below ``base_lr`` and the last one is 0.

    Parameters
    ----------
    base_lr : float
    iteration : int
        Steps taken so far (``epoch * iterations_per_epoch + batch``); past the end the
        rate stays 0.
    max_iterations : int
        ``epochs * iterations_per_epoch`` (at least 2 for 'gluoncv').
    power : float
    convention : {'torch', 'gluoncv'}

    Returns
    -------
    float
    """
    if convention not in _POLY_CONVENTIONS:
        raise ValueError("convention must be one of %s, got %r"
                         % (", ".join(map(repr, _POLY_CONVENTIONS)), convention))
    if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations \
            or max_iterations < (2 if convention == "gluoncv" else 1):
        raise ValueError("max_iterations must be an integer >= %d, got %r"
                         % (2 if convention == "gluoncv" else 1, max_iterations))
    if int(iteration) != iteration or iteration < 0:
        raise ValueError("iteration must be an integer >= 0, got %r" % (iteration,))
    if convention == "torch":
        fraction = min(iteration, max_iterations) / max_iterations
    else:
        span = max_iterations - 1
        fraction = min(iteration + 1, span) / span
    return float(base_lr) * (1.0 - fraction) ** float(power)


class PolyLearningRate:
    """A shared learning rate that follows :func:`poly_learning_rate` step by step.

    Give :attr:`variable` to an update function as its learning rate and call
    :meth:`set_iteration` before each step (the compiled function reads the new value
    without recompiling). A resumed run calls ``set_iteration(epoch *
    iterations_per_epoch)``: the schedule needs no other saved state.

    Parameters
    ----------
    base_lr : float
    max_iterations : int
    power : float
    convention : {'torch', 'gluoncv'}
    dtype : str
        Of the shared scalar (floatX by default).

    Attributes
    ----------
    variable : SharedVariable
        The scalar learning rate, named ``learning_rate``.
    iteration : int
        The step the current value belongs to.

    Examples
    --------
    >>> schedule = PolyLearningRate(0.01, max_iterations=100)
    >>> schedule.set_iteration(50)
    >>> round(float(schedule.variable.get_value()), 6)
    0.005359
    """

    def __init__(self, base_lr, max_iterations, power=0.9, convention="torch", dtype=None):
        self.base_lr = float(base_lr)
        self.max_iterations = int(max_iterations)
        self.power = float(power)
        self.convention = convention
        self.iteration = 0
        dtype = dtype or pytensor.config.floatX
        self.variable = pytensor.shared(np.asarray(self.value(0), dtype=dtype),
                                        name="learning_rate")

    def __repr__(self):
        return ("PolyLearningRate(base_lr=%r, max_iterations=%r, power=%r, convention=%r)"
                % (self.base_lr, self.max_iterations, self.power, self.convention))

    def value(self, iteration):
        """The rate of step `iteration` (0-based)."""
        return poly_learning_rate(self.base_lr, iteration, self.max_iterations, self.power,
                                  self.convention)

    def set_iteration(self, iteration):
        """Set :attr:`variable` to the rate of step `iteration` and return that rate."""
        rate = self.value(iteration)
        self.iteration = int(iteration)
        self.variable.set_value(np.asarray(rate, dtype=self.variable.dtype))
        return rate


def norm_constraint(tensor_var, max_norm, norm_axes=None, epsilon=1e-7):
    """Rescale weight vectors whose norm exceeds `max_norm`.

    Each vector is multiplied by ``min(norm, max_norm) / (epsilon + norm)``.

    Parameters
    ----------
    tensor_var : symbolic tensor
        A parameter, update or gradient expression.
    max_norm : scalar
        The largest norm allowed.
    norm_axes : sequence of int, optional
        The axes to compute norms over. By default ``(0,)`` for a 2-D (dense
        layer) tensor and all axes but the first for a 3-D to 5-D
        (convolution) tensor.
    epsilon : scalar
        Guards the division by small norms.

    Returns
    -------
    symbolic tensor
        `tensor_var` with its too-long vectors shortened to `max_norm`.

    Raises
    ------
    ValueError
        If `norm_axes` is omitted for a tensor that is not 2-D to 5-D.
    """
    sum_over = utils._default_norm_axes(tensor_var.ndim, norm_axes)
    dtype = tensor_var.dtype
    norms = pt.sqrt(pt.sum(pt.square(tensor_var), axis=sum_over, keepdims=True))
    target_norms = pt.clip(norms, 0, _hyperparameter(max_norm, dtype))
    return tensor_var * (target_norms / (_hyperparameter(epsilon, dtype) + norms))


def total_norm_constraint(tensor_vars, max_norm, epsilon=1e-7, return_norm=False):
    """Rescale a list of tensors so that their joint L2 norm is at most `max_norm`.

    All tensors are multiplied by ``min(norm, max_norm) / (epsilon + norm)``
    where ``norm`` is the L2 norm of all their elements together (gradient
    clipping by total norm).

    Parameters
    ----------
    tensor_vars : list of symbolic tensors
        The tensors to rescale, e.g. gradients.
    max_norm : scalar
        The largest total norm allowed.
    epsilon : scalar
        Guards the division by a small norm.
    return_norm : bool
        Whether to also return the total norm before rescaling.

    Returns
    -------
    tensor_vars_scaled : list of symbolic tensors
        The rescaled tensors.
    norm : symbolic scalar
        The total norm before rescaling; only if `return_norm` is true.

    Raises
    ------
    ValueError
        If `tensor_vars` is empty.
    """
    tensor_vars = list(tensor_vars)
    if not tensor_vars:
        raise ValueError("total_norm_constraint needs at least one tensor")
    norm = pt.sqrt(sum(pt.sum(tensor ** 2) for tensor in tensor_vars))
    dtype = norm.dtype
    target_norm = pt.clip(norm, 0, _hyperparameter(max_norm, dtype))
    multiplier = target_norm / (_hyperparameter(epsilon, dtype) + norm)
    tensor_vars_scaled = [
        tensor * pt.cast(multiplier, tensor.dtype) for tensor in tensor_vars
    ]
    if return_norm:
        return tensor_vars_scaled, norm
    return tensor_vars_scaled


def get_update_state(updates, params):
    """List the optimiser-state variables of an update dictionary.

    Parameters
    ----------
    updates : OrderedDict
        An update dictionary returned by a function of this module.
    params : iterable of shared variables
        The parameters it updates.

    Returns
    -------
    list of SharedVariable
        Every key of `updates` that is not in `params` (velocities,
        accumulators, moments, step counters), in dictionary order, which is
        the same each time the same updates are built.
    """
    param_ids = {id(param) for param in params}
    return [variable for variable in updates if id(variable) not in param_ids]


def get_update_state_values(updates, params):
    """Return copies of the optimiser-state values, e.g. to save them.

    Parameters
    ----------
    updates : OrderedDict
        An update dictionary returned by a function of this module.
    params : iterable of shared variables
        The parameters it updates.

    Returns
    -------
    list of numpy.ndarray
        The values of :func:`get_update_state`, in its order.
    """
    return [utils.host_value(variable) for variable in get_update_state(updates, params)]


def set_update_state_values(updates, params, values):
    """Restore optimiser-state values saved by :func:`get_update_state_values`.

    Parameters
    ----------
    updates : OrderedDict
        An update dictionary built the same way as the one saved.
    params : iterable of shared variables
        The parameters it updates.
    values : sequence of array_like
        One value per state variable, in the order of
        :func:`get_update_state`.

    Raises
    ------
    ValueError
        If the number of values or one of their shapes does not match.
    """
    state = get_update_state(updates, params)
    values = list(values)
    if len(values) != len(state):
        raise ValueError("mismatch: got %d values to set %d optimiser state "
                         "variables" % (len(values), len(state)))
    for variable, value in zip(state, values):
        current = variable.get_value(borrow=True)
        value = np.asarray(value)
        if value.shape != current.shape:
            raise ValueError("mismatch: optimiser state %s has shape %r, got a "
                             "value of shape %r" % (variable.name, current.shape, value.shape))
        variable.set_value(value.astype(current.dtype))
