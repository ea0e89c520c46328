"""
Loss and accuracy expressions, with Lasagne's names and formulas
(``lasagne.objectives``).

Six functions build element- or item-wise losses from predictions and
targets:

.. autosummary::
    :nosignatures:

    binary_crossentropy
    categorical_crossentropy
    squared_error
    binary_hinge_loss
    multiclass_hinge_loss
    huber_loss

:func:`aggregate` turns such a loss into a scalar to differentiate, and two
functions measure accuracy for validation (their gradient is zero):

.. autosummary::
    :nosignatures:

    aggregate
    binary_accuracy
    categorical_accuracy

Score-map losses for the dilated-ResNet FCNs (Gluon-CV's
``MixSoftmaxCrossEntropyLoss``, torchvision's reference ``criterion``) take
unnormalised class scores of shape (B, C, H, W) and integer label maps with an
ignore label:

.. autosummary::
    :nosignatures:

    softmax_cross_entropy_2d
    mix_softmax_cross_entropy
    MixSoftmaxCrossEntropyLoss

PyTensor no longer ships ``nnet.categorical_crossentropy`` or
``nnet.binary_crossentropy``; the formulas are written out here, with the
same values as Theano's ops.

Examples
--------
>>> import pytensor.tensor as pt
>>> from fcn8_lasagne.objectives import categorical_crossentropy, aggregate
>>> probabilities = pt.matrix('probabilities')
>>> labels = pt.ivector('labels')
>>> loss = aggregate(categorical_crossentropy(probabilities, labels))
"""

import pytensor.tensor as pt
from pytensor.tensor.special import log_softmax

from . import utils
from .utils import as_theano_expression

__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "squared_error",
    "aggregate",
    "binary_hinge_loss",
    "multiclass_hinge_loss",
    "huber_loss",
    "binary_accuracy",
    "categorical_accuracy",
    "softmax_cross_entropy_2d",
    "mix_softmax_cross_entropy",
    "MixSoftmaxCrossEntropyLoss",
]


def align_targets(predictions, targets):
    """Turn a target vector into a column when the predictions are a column.

    A network with a single output unit gives predictions of shape
    ``(N, 1)`` (broadcastable in its second axis); a target vector of shape
    ``(N,)`` would otherwise broadcast against it to ``(N, N)``.

    Parameters
    ----------
    predictions : symbolic tensor
        The predictions of a network.
    targets : symbolic tensor
        The corresponding targets.

    Returns
    -------
    predictions : symbolic tensor
        Unchanged.
    targets : symbolic tensor
        ``targets`` as a column if `predictions` is a column and `targets` a
        vector, else unchanged.
    """
    if (getattr(predictions, "broadcastable", None) == (False, True)
            and getattr(targets, "ndim", None) == 1):
        targets = as_theano_expression(targets).dimshuffle(0, "x")
    return predictions, targets


def _is_integer_tensor(variable):
    return variable.dtype.startswith(("int", "uint"))


def binary_crossentropy(predictions, targets):
    """Element-wise binary cross-entropy.

    .. math:: L = -t \\log(p) - (1 - t) \\log(1 - p)

    Parameters
    ----------
    predictions : symbolic tensor
        Predictions in (0, 1), such as sigmoid outputs.
    targets : symbolic tensor
        Targets in [0, 1].

    Returns
    -------
    symbolic tensor
        The element-wise binary cross-entropy.
    """
    predictions, targets = align_targets(predictions, targets)
    return -(targets * pt.log(predictions) + (1 - targets) * pt.log(1 - predictions))


def categorical_crossentropy(predictions, targets):
    """Item-wise categorical cross-entropy.

    .. math:: L_i = - \\sum_j{t_{i,j} \\log(p_{i,j})}

    Parameters
    ----------
    predictions : symbolic 2-D tensor
        Predictions in (0, 1), such as softmax outputs, one row per data
        point and one column per class.
    targets : symbolic 2-D or 1-D tensor
        Either targets in [0, 1] with the layout of `predictions` (one-hot or
        probabilities), or an integer vector of class indices, for which the
        loss is ``-log(predictions[i, targets[i]])``.

    Returns
    -------
    symbolic 1-D tensor
        The cross-entropy of each data point.

    Raises
    ------
    TypeError
        If the ranks of `predictions` and `targets` do not fit together, or
        if vector targets are not integers.
    """
    predictions = as_theano_expression(predictions)
    targets = as_theano_expression(targets)
    if targets.ndim == predictions.ndim:
        return -pt.sum(targets * pt.log(predictions), axis=predictions.ndim - 1)
    if targets.ndim == predictions.ndim - 1:
        if predictions.ndim != 2:
            raise TypeError(
                "categorical_crossentropy with class-index targets needs 2-D "
                "predictions, got %d-D" % predictions.ndim)
        if not _is_integer_tensor(targets):
            raise TypeError(
                "class-index targets must be integers, got dtype %s" % targets.dtype)
        row_indices = utils.row_indices(targets.shape[0])
        return -pt.log(predictions[row_indices, targets])
    raise TypeError("rank mismatch between coding and true distributions")


def squared_error(a, b):
    """Element-wise squared difference.

    .. math:: L = (p - t)^2

    Parameters
    ----------
    a, b : symbolic tensor
        The tensors to compare.

    Returns
    -------
    symbolic tensor
        The element-wise squared difference.
    """
    a, b = align_targets(a, b)
    return pt.square(a - b)


def aggregate(loss, weights=None, mode="mean"):
    """Aggregate an element- or item-wise loss into a scalar.

    Parameters
    ----------
    loss : symbolic tensor
        The loss expression to aggregate.
    weights : symbolic tensor, optional
        Weights for each element or item, broadcastable to the shape of
        `loss`; all elements weigh the same if omitted. Binary weights mask
        entries out (masked entries must still be finite: NaNs propagate).
    mode : {'mean', 'sum', 'normalized_sum'}
        Average, sum, or sum divided by the sum of the weights (which needs
        `weights`).

    Returns
    -------
    symbolic scalar
        The aggregated loss.

    Raises
    ------
    ValueError
        If `mode` is unknown, or is ``'normalized_sum'`` without `weights`.
    """
    if weights is not None:
        loss = loss * weights
    if mode == "mean":
        return loss.mean()
    if mode == "sum":
        return loss.sum()
    if mode == "normalized_sum":
        if weights is None:
            raise ValueError("require weights for mode='normalized_sum'")
        return loss.sum() / weights.sum()
    raise ValueError("mode must be 'mean', 'sum' or 'normalized_sum', got %r" % mode)


def binary_hinge_loss(predictions, targets, delta=1, log_odds=None, binary=True):
    """Element-wise binary hinge loss.

    .. math:: L_i = \\max(0, \\delta - t_i p_i)

    Parameters
    ----------
    predictions : symbolic tensor
        Sigmoid outputs in (0, 1) (``log_odds=False``) or their inputs, the
        log-odds (``log_odds=True``).
    targets : symbolic tensor
        Targets in {0, 1} (``binary=True``) or in {-1, 1}.
    delta : scalar
        The margin.
    log_odds : bool
        Must be given: as in Lasagne, leaving it ``None`` raises a
        ``FutureWarning`` (its default was due to change).
    binary : bool
        Whether `targets` are in {0, 1} rather than {-1, 1}.

    Returns
    -------
    symbolic tensor
        The element-wise hinge loss.

    Raises
    ------
    FutureWarning
        If `log_odds` is None.
    """
    if log_odds is None:
        raise FutureWarning(
            "The `log_odds` argument to `binary_hinge_loss` will change its "
            "default to `False` in a future version. Explicitly give "
            "`log_odds=True` to retain current behavior in your code, but also "
            "check the documentation if this is what you want.")
    if not log_odds:
        predictions = pt.log(predictions / (1 - predictions))
    if binary:
        targets = 2 * targets - 1
    predictions, targets = align_targets(predictions, targets)
    return pt.maximum(delta - predictions * targets, 0)


def multiclass_hinge_loss(predictions, targets, delta=1):
    """Item-wise multi-class hinge loss.

    .. math:: L_i = \\max(0, \\max_{j \\ne t_i} p_{i,j} - p_{i,t_i} + \\delta)

    Parameters
    ----------
    predictions : symbolic 2-D tensor
        Scores or probabilities, one row per data point.
    targets : symbolic 1-D or 2-D tensor
        An integer vector of class indices, or a one-hot matrix with the
        layout of `predictions` (soft targets do not work).
    delta : scalar
        The margin.

    Returns
    -------
    symbolic 1-D tensor
        The hinge loss of each data point.

    Raises
    ------
    TypeError
        If the ranks of `predictions` and `targets` do not fit together.
    """
    predictions = as_theano_expression(predictions)
    targets = as_theano_expression(targets)
    if targets.ndim == predictions.ndim:
        target_classes = pt.argmax(targets, axis=-1)
    elif targets.ndim == predictions.ndim - 1:
        target_classes = targets
    else:
        raise TypeError("rank mismatch between targets and predictions")
    is_target = pt.eq(pt.arange(predictions.shape[1])[None, :], target_classes[:, None])
    correct_scores = predictions[utils.row_indices(predictions.shape[0]), target_classes]
    # -inf never wins the max, so the max runs over the other classes only.
    best_other_scores = pt.max(pt.switch(is_target, -float("inf"), predictions), axis=1)
    return pt.maximum(best_other_scores - correct_scores + delta, 0)


def huber_loss(predictions, targets, delta=1):
    """Element-wise Huber loss (Fast R-CNN's smooth L1 loss for ``delta=1``).

    .. math:: L = (p - t)^2 / 2 \\text{ if } |p - t| \\le \\delta,
              \\text{ else } \\delta (|p - t| - \\delta / 2)

    Parameters
    ----------
    predictions : symbolic tensor
    targets : symbolic tensor
        As for :func:`squared_error` (a target vector fits a column of predictions).
    delta : scalar, default 1

    Returns
    -------
    symbolic tensor
        The element-wise loss; its gradient is the difference, clipped to
        ``[-delta, delta]``.
    """
    predictions, targets = align_targets(predictions, targets)
    abs_diff = abs(targets - predictions)
    quadratic = 0.5 * squared_error(targets, predictions)
    linear = delta * (abs_diff - delta / 2.0)
    return pt.switch(abs_diff <= delta, quadratic, linear)


def binary_accuracy(predictions, targets, threshold=0.5):
    """Element-wise binary accuracy.

    .. math:: L_i = \\mathbb{I}(t_i = \\mathbb{I}(p_i \\ge \\alpha))

    Parameters
    ----------
    predictions : symbolic tensor
        Probabilities of the positive class.
    targets : symbolic tensor
        Targets in {0, 1}.
    threshold : scalar
        Predictions at or above it count as the positive class.

    Returns
    -------
    symbolic tensor
        1 where the thresholded prediction equals the target, else 0
        (boolean dtype; call ``.mean(dtype=floatX)`` to average).
    """
    predictions, targets = align_targets(predictions, targets)
    return pt.eq(pt.ge(predictions, threshold), targets)


def categorical_accuracy(predictions, targets, top_k=1):
    """Item-wise categorical accuracy.

    .. math:: L_i = \\mathbb{I}(t_i = \\operatorname{argmax}_c p_{i,c})

    With ``top_k > 1`` a data point counts as correct when its target is
    among its `top_k` highest predictions.

    Parameters
    ----------
    predictions : symbolic 2-D tensor
        Class scores or probabilities, one row per data point.
    targets : symbolic 1-D or 2-D tensor
        An integer vector of class indices, or a one-hot matrix with the
        layout of `predictions`.
    top_k : int
        How many of the highest predictions may hold the target.

    Returns
    -------
    symbolic 1-D tensor
        1 for each correct data point, else 0 (boolean dtype).

    Raises
    ------
    TypeError
        If the ranks of `predictions` and `targets` do not fit together.
    ValueError
        If `top_k` is not a positive integer.
    """
    predictions = as_theano_expression(predictions)
    targets = as_theano_expression(targets)
    if targets.ndim == predictions.ndim:
        targets = pt.argmax(targets, axis=-1)
    elif targets.ndim != predictions.ndim - 1:
        raise TypeError("rank mismatch between targets and predictions")
    if int(top_k) != top_k or top_k < 1:
        raise ValueError("top_k must be a positive integer, got %r" % (top_k,))

    if top_k == 1:
        return pt.eq(pt.argmax(predictions, axis=-1), targets)
    top_classes = pt.argsort(predictions, axis=-1)[..., -int(top_k):]
    return pt.any(pt.eq(top_classes, targets[..., None]), axis=-1)


def _score_map_and_labels(scores, labels):
    scores = as_theano_expression(scores)
    labels = as_theano_expression(labels)
    if scores.ndim < 2:
        raise TypeError("scores must be (batch, classes, ...) score maps, got a %d-D tensor"
                        % scores.ndim)
    if labels.ndim != scores.ndim - 1:
        raise TypeError("labels must have one axis less than the scores (no class axis): "
                        "scores are %d-D, labels %d-D" % (scores.ndim, labels.ndim))
    if not _is_integer_tensor(labels):
        raise TypeError("labels must be integer class indices, got dtype %s" % labels.dtype)
    return scores, labels


def softmax_cross_entropy_2d(scores, labels, ignore_label=255):
    """Softmax cross-entropy of score maps, averaged over the pixels not ignored.

    .. math:: L = -\\frac{1}{|V|} \\sum_{i \\in V} \\log \\operatorname{softmax}(s_i)_{y_i},
              \\quad V = \\{i : y_i \\ne \\text{ignore}\\}

    the value of ``torch.nn.functional.cross_entropy(scores, labels,
    ignore_index=ignore_label)`` (torchvision's reference script, ``ignore_index=255``)
    and of Gluon-CV's ``SoftmaxCrossEntropyLoss`` gradient (``SoftmaxOutput`` with
    ``normalization='valid'``).

    Parameters
    ----------
    scores : symbolic tensor of shape (B, C, ...)
        Unnormalised class scores (the softmax is taken here, over axis 1).
    labels : symbolic integer tensor of shape (B, ...)
        Class indices in ``0 .. C - 1``, or `ignore_label`.
    ignore_label : int
        Pixels with this label add nothing to the sum or the count. VOC's void is 255
        (Gluon-CV maps it to -1); this package's datasets mark void with ``n_classes``.

    Returns
    -------
    symbolic scalar
        The mean over the counted pixels; 0 when every pixel is ignored (torch gives NaN).

    Notes
    -----
    A label that is neither a class nor `ignore_label` is counted with a zero loss; the
    dataset readers refuse such labels before training.
    """
    scores, labels = _score_map_and_labels(scores, labels)
    log_probabilities = log_softmax(scores, axis=1)
    spatial = ["x"] * (scores.ndim - 2)
    classes = pt.arange(scores.shape[1], dtype=labels.dtype).dimshuffle("x", 0, *spatial)
    one_hot = pt.eq(labels.dimshuffle(0, "x", *range(1, labels.ndim)), classes)
    picked = pt.sum(pt.cast(one_hot, scores.dtype) * log_probabilities, axis=1)
    counted = pt.cast(pt.neq(labels, int(ignore_label)), scores.dtype)
    n_counted = pt.maximum(pt.sum(counted), pt.constant(1, dtype=scores.dtype))
    return pt.cast(-pt.sum(picked * counted) / n_counted, scores.dtype)


def mix_softmax_cross_entropy(main_scores, aux_scores, labels, aux_weight=0.5,
                              ignore_label=255):
    """The FCN training loss: main cross-entropy plus `aux_weight` times the aux one.

    ``L = CE(main) + aux_weight * CE(aux)``, each term a separate
    :func:`softmax_cross_entropy_2d` (mean over its own non-ignored pixels; both heads
    are resized to the label size, so the counts are equal). This is torchvision's
    reference ``criterion`` (``out`` + 0.5 ``aux``, ``ignore_index=255``) and the value
    Gluon-CV's ``MixSoftmaxCrossEntropyLoss`` names (train.py: ``--aux-weight 0.5``).

    Parameters
    ----------
    main_scores : symbolic tensor of shape (B, C, ...)
        The main head's scores (``net['out']``).
    aux_scores : symbolic tensor of the same shape, or None
        The auxiliary head's scores (``net['aux']``); ``None`` gives the main term alone.
    labels : symbolic integer tensor of shape (B, ...)
    aux_weight : float or symbolic scalar
    ignore_label : int

    Returns
    -------
    symbolic scalar
    """
    loss = softmax_cross_entropy_2d(main_scores, labels, ignore_label)
    if aux_scores is None:
        return loss
    aux_loss = softmax_cross_entropy_2d(aux_scores, labels, ignore_label)
    weight = aux_weight if isinstance(aux_weight, pt.Variable) else pt.constant(
        aux_weight, dtype=loss.dtype)
    return pt.cast(loss + pt.cast(weight, loss.dtype) * aux_loss, loss.dtype)


class MixSoftmaxCrossEntropyLoss:
    """Gluon-CV's ``MixSoftmaxCrossEntropyLoss`` as a callable on symbolic tensors.

    Parameters
    ----------
    aux : bool
        Whether the call receives an auxiliary output.
    aux_weight : float
        Gluon-CV's class default 0.2; its train.py (and torchvision's script) pass 0.5.
    ignore_label : int
        Gluon-CV's default -1.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> criterion = MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5, ignore_label=255)
    >>> out, aux = pt.tensor4('out'), pt.tensor4('aux')
    >>> loss = criterion(out, aux, pt.itensor3('labels'))
    """

    def __init__(self, aux=True, aux_weight=0.2, ignore_label=-1):
        self.aux = bool(aux)
        self.aux_weight = aux_weight
        self.ignore_label = int(ignore_label)

    def __repr__(self):
        return ("MixSoftmaxCrossEntropyLoss(aux=%r, aux_weight=%r, ignore_label=%r)"
                % (self.aux, self.aux_weight, self.ignore_label))

    def __call__(self, *inputs):
        """``criterion(main, aux, labels)`` with aux, else ``criterion(main, labels)``."""
        expected = 3 if self.aux else 2
        if len(inputs) != expected:
            raise TypeError(
                "MixSoftmaxCrossEntropyLoss(aux=%r) takes %s, got %d tensors"
                % (self.aux, "(main, aux, labels)" if self.aux else "(main, labels)",
                   len(inputs)))
        if self.aux:
            main, aux, labels = inputs
        else:
            (main, labels), aux = inputs, None
        return mix_softmax_cross_entropy(main, aux, labels, self.aux_weight, self.ignore_label)
