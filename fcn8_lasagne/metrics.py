"""
Segmentation metrics: the tutorial's symbolic metrics and NumPy scores.

Symbolic metrics, with the signatures and numbers of ``train_fcn8.py`` (and
``metrics.py``) of the deeplearning.net FCN tutorial, for pixels flattened to
rows:

.. autosummary::
    :nosignatures:

    crossentropy_metric
    accuracy_metric
    jaccard_metric

``crossentropy``, ``accuracy`` and ``jaccard`` are the same functions under
the names of the tutorial's ``metrics.py``.

NumPy scores for evaluation:

.. autosummary::
    :nosignatures:

    jaccard_from_totals
    ConfusionMatrix
    SegmentationMetric
    gluoncv_scores
    torchvision_scores

:func:`jaccard_from_totals` turns the per-batch outputs of
:func:`jaccard_metric`, summed over batches, into per-class Jaccard indices
(IoU) and their mean exactly as ``train_fcn8.py`` does;
:class:`ConfusionMatrix` accumulates a confusion matrix over any number of
label maps and derives the usual scores from it.

pixAcc and mIoU of the dilated-ResNet FCNs
------------------------------------------
Gluon-CV (``gluoncv.utils.metrics.SegmentationMetric``) and torchvision's
``references/segmentation`` (``utils.ConfusionMatrix``) accumulate the same counts over
the non-ignored pixels of a whole data set: correct pixels, labelled pixels, and per class
the intersection ``TP`` and union ``TP + FP + FN``. They differ only where a count is 0:

* Gluon-CV (:func:`gluoncv_scores`, :class:`SegmentationMetric`): ``pixAcc = correct /
  (eps + labelled)``, ``IoU = TP / (eps + union)`` with ``eps = np.spacing(1)``, and
  ``mIoU`` the mean over **all** classes, so a class absent from both labels and
  predictions counts as IoU 0.
* torchvision (:func:`torchvision_scores`): plain divisions, so such a class has IoU NaN
  and ``mean IoU`` is NaN.
* :meth:`ConfusionMatrix.mean_iou`: the mean over the classes that have an IoU.

With every class present (VOC val) the three agree to 1e-15. ``fcn8 train`` and ``fcn8
evaluate`` of the ResNet FCNs print Gluon-CV's pixAcc and mIoU (the numbers of its model
zoo, and finite on small sets), the per-class IoU with absent classes marked, and the
tutorial's Jaccard beside them.

Examples
--------
>>> import pytensor, pytensor.tensor as pt
>>> probabilities = pt.matrix('probabilities')   # (pixels, classes)
>>> labels = pt.ivector('labels')                 # (pixels,)
>>> loss = crossentropy_metric(probabilities, labels, void_labels=[2])
>>> jaccard_counts = jaccard_metric(probabilities, labels, n_classes=2)
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from .utils import as_theano_expression, row_indices

__all__ = [
    "crossentropy_metric",
    "accuracy_metric",
    "jaccard_metric",
    "crossentropy",
    "accuracy",
    "jaccard",
    "jaccard_from_totals",
    "ConfusionMatrix",
    "SegmentationMetric",
    "gluoncv_scores",
    "torchvision_scores",
]

# Predictions are clipped to [_EPSILON, 1 - _EPSILON] before the logarithm.
# Spelled ``10e-7`` (= 1e-6) as in train_fcn8.py.
_EPSILON = 10e-7


def _integer_vector(variable, what):
    """Check that `variable` is a symbolic integer vector."""
    if variable.ndim != 1 or not variable.dtype.startswith(("int", "uint")):
        raise TypeError(
            "%s must be an integer vector (one class index per pixel), got a "
            "%d-D tensor of dtype %s" % (what, variable.ndim, variable.dtype))
    return variable


def _predicted_classes(y_pred):
    """Class indices from (N, n_classes) probabilities or (N,) indices."""
    y_pred = as_theano_expression(y_pred)
    if y_pred.ndim == 2:
        return pt.argmax(y_pred, axis=1)
    if y_pred.ndim == 1:
        return _integer_vector(y_pred, "1-D y_pred")
    raise ValueError("y_pred must be 1-D (class indices) or 2-D (pixels x classes), "
                     "got %d-D" % y_pred.ndim)


def _true_classes(y_true, one_hot):
    """Class indices from an integer vector, or argmax of a one-hot matrix."""
    y_true = as_theano_expression(y_true)
    if one_hot:
        if y_true.ndim != 2:
            raise ValueError("one-hot y_true must be 2-D (pixels x classes), got "
                             "%d-D" % y_true.ndim)
        return pt.argmax(y_true, axis=1)
    return _integer_vector(y_true, "y_true")


def _non_void(y_true, void_labels):
    """Boolean vector: True where the label is none of `void_labels`."""
    keep = pt.ones_like(y_true, dtype="bool")
    for void_label in void_labels:
        keep = pt.and_(keep, pt.neq(y_true, int(void_label)))
    return keep


def crossentropy_metric(y_pred, y_true, void_labels, one_hot=False):
    """Mean categorical cross-entropy over the non-void pixels.

    Predictions are clipped to ``[1e-6, 1 - 1e-6]``; at void pixels the
    label is replaced by 0 for the look-up and the loss is masked out:

    .. math:: L = \\frac{\\sum_i m_i (-\\log \\hat p_{i, t_i})}{\\sum_i m_i}

    Parameters
    ----------
    y_pred : symbolic 2-D tensor
        Class probabilities, one row per pixel.
    y_true : symbolic integer vector, or 2-D one-hot tensor if `one_hot`
        The label of each pixel.
    void_labels : sequence of int
        Labels to ignore (may be empty).
    one_hot : bool
        Whether `y_true` is one-hot encoded (the class is its argmax).

    Returns
    -------
    symbolic scalar
        The masked mean loss (dtype floatX or wider); NaN if every pixel is
        void.

    Raises
    ------
    ValueError
        If `y_pred` is not 2-D.
    TypeError
        If `y_true` is not an integer vector (when not `one_hot`).
    """
    y_pred = as_theano_expression(y_pred)
    if y_pred.ndim != 2:
        raise ValueError("y_pred must be 2-D (pixels x classes), got %d-D" % y_pred.ndim)
    labels = _true_classes(y_true, one_hot)

    low = np.asarray(_EPSILON, dtype=y_pred.dtype)
    high = np.asarray(1.0 - _EPSILON, dtype=y_pred.dtype)
    clipped = pt.clip(y_pred, low, high)

    keep = _non_void(labels, void_labels)
    mask = pt.cast(keep, pytensor.config.floatX)
    lookup_labels = pt.switch(keep, labels, 0)
    pixel_losses = -pt.log(clipped[row_indices(labels.shape[0]), lookup_labels])
    return pt.sum(pixel_losses * mask) / pt.sum(mask)


def accuracy_metric(y_pred, y_true, void_labels, one_hot=False):
    """Fraction of the non-void pixels whose predicted class is their label.

    Parameters
    ----------
    y_pred : symbolic 2-D tensor or integer vector
        Class probabilities (one row per pixel; the prediction is the argmax)
        or predicted class indices.
    y_true : symbolic integer vector, or 2-D one-hot tensor if `one_hot`
        The label of each pixel.
    void_labels : sequence of int
        Labels to ignore (may be empty).
    one_hot : bool
        Whether `y_true` is one-hot encoded.

    Returns
    -------
    symbolic scalar
        The masked mean accuracy (dtype floatX); NaN if every pixel is void.

    Raises
    ------
    ValueError
        If `y_pred` is neither 1-D nor 2-D.
    TypeError
        If an index vector is not of an integer dtype.
    """
    predictions = _predicted_classes(y_pred)
    labels = _true_classes(y_true, one_hot)
    floatX = pytensor.config.floatX
    correct = pt.cast(pt.eq(predictions, labels), floatX)
    mask = pt.cast(_non_void(labels, void_labels), floatX)
    return pt.sum(correct * mask) / pt.sum(mask)


def jaccard_metric(y_pred, y_true, n_classes, one_hot=False):
    """Per-class true positives and union sizes for the Jaccard index (IoU).

    Equal to the tutorial's computation from the confusion matrix
    ``cm[true, pred]`` counted over the pixels whose label lies in
    ``0 .. n_classes - 1`` (void labels, numbered ``>= n_classes``, drop
    out): ``TP = diag(cm)`` and ``TP + FP + FN = cm.sum(0) + cm.sum(1) -
    TP``. It is computed from one-hot comparisons in O(pixels x classes),
    without building the matrix entry by entry.

    Parameters
    ----------
    y_pred : symbolic 2-D tensor or integer vector
        Class probabilities (one row per pixel; the prediction is the argmax)
        or predicted class indices.
    y_true : symbolic integer vector, or 2-D one-hot tensor if `one_hot`
        The label of each pixel.
    n_classes : int
        The number of (non-void) classes.
    one_hot : bool
        Whether `y_true` is one-hot encoded.

    Returns
    -------
    symbolic float32 tensor of shape (2, n_classes)
        Row 0: true positives per class; row 1: ``TP + FP + FN`` per class.
        Sum these over batches and divide (see :func:`jaccard_from_totals`).

    Raises
    ------
    ValueError
        If `n_classes` is not a positive integer or `y_pred` is neither 1-D
        nor 2-D.
    TypeError
        If an index vector is not of an integer dtype.
    """
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
        raise ValueError("n_classes must be a positive integer, got %r" % (n_classes,))
    predictions = _predicted_classes(y_pred)
    labels = _true_classes(y_true, one_hot)

    classes = pt.arange(int(n_classes))
    is_label = pt.eq(labels[:, None], classes[None, :])
    counted = pt.any(is_label, axis=1, keepdims=True)
    is_prediction = pt.and_(pt.eq(predictions[:, None], classes[None, :]), counted)

    true_positives = pt.sum(pt.and_(is_label, is_prediction), axis=0)
    union = pt.sum(is_label, axis=0) + pt.sum(is_prediction, axis=0) - true_positives
    return pt.cast(pt.stack([true_positives, union], axis=0), "float32")


# The names used by the tutorial's metrics.py.
crossentropy = crossentropy_metric
accuracy = accuracy_metric
jaccard = jaccard_metric


def jaccard_from_totals(jaccard_totals):
    """Per-class Jaccard indices and their mean, as ``train_fcn8.py`` reports them.

    Parameters
    ----------
    jaccard_totals : array_like of shape (2, n_classes)
        The outputs of :func:`jaccard_metric` summed over batches.

    Returns
    -------
    per_class : numpy.ndarray of shape (n_classes,)
        ``jaccard_totals[0] / jaccard_totals[1]``; NaN for a class that
        appears in neither labels nor predictions.
    mean : float
        ``np.mean(per_class)``: as in the tutorial, NaN if any class is NaN.

    Raises
    ------
    ValueError
        If `jaccard_totals` is not of shape (2, n_classes).
    """
    totals = np.asarray(jaccard_totals, dtype=np.float64)
    if totals.ndim != 2 or totals.shape[0] != 2:
        raise ValueError("jaccard_totals must have shape (2, n_classes), got %r"
                         % (totals.shape,))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = totals[0] / totals[1]
    return per_class, float(np.mean(per_class))


class ConfusionMatrix:
    """A confusion matrix accumulated over label maps, and scores from it.

    Parameters
    ----------
    n_classes : int
        The number of classes; labels and predictions are in
        ``0 .. n_classes - 1``.
    void_label : int, sequence of int or None
        Label(s) to ignore besides those outside ``0 .. n_classes - 1``,
        which are always ignored.

    Attributes
    ----------
    matrix : numpy.ndarray of int64, shape (n_classes, n_classes)
        ``matrix[t, p]`` counts the pixels labelled ``t`` and predicted
        ``p``.

    Notes
    -----
    A class that appears in neither the labels nor the predictions has no
    IoU (0 / 0): :meth:`per_class_iou` gives NaN for it and the means skip
    it. Likewise a class absent from the labels has NaN accuracy in
    :meth:`per_class_accuracy` and is left out of
    :meth:`mean_class_accuracy`. Scores of an empty matrix are NaN.

    Examples
    --------
    >>> scores = ConfusionMatrix(2, void_label=2)
    >>> _ = scores.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 2]]))
    >>> scores.matrix
    array([[1, 1],
           [0, 1]])
    >>> float(scores.mean_iou())
    0.5
    """

    def __init__(self, n_classes, void_label=None):
        if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
            raise ValueError("n_classes must be a positive integer, got %r"
                             % (n_classes,))
        self.n_classes = int(n_classes)
        if void_label is None:
            void_labels = ()
        elif np.ndim(void_label) == 0:
            void_labels = (int(void_label),)
        else:
            void_labels = tuple(int(label) for label in void_label)
        self.void_labels = void_labels
        self.matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)

    def reset(self):
        """Set every count back to zero."""
        self.matrix[...] = 0

    def update(self, predictions, labels):
        """Add the pixels of one or more label maps to the counts.

        Parameters
        ----------
        predictions : array_like of int
            Predicted class indices (take the argmax over the class axis of
            probabilities first).
        labels : array_like of int
            The true labels, of the same shape. Pixels whose label is void
            or outside ``0 .. n_classes - 1`` are skipped.

        Returns
        -------
        ConfusionMatrix
            `self`, so that calls can be chained.

        Raises
        ------
        ValueError
            If the shapes differ, or a counted pixel's prediction is outside
            ``0 .. n_classes - 1``.
        TypeError
            If either array is not of an integer dtype.
        """
        predictions = np.asarray(predictions)
        labels = np.asarray(labels)
        for array, what in ((predictions, "predictions"), (labels, "labels")):
            if not np.issubdtype(array.dtype, np.integer):
                raise TypeError("%s must be integer class indices, got dtype %s"
                                % (what, array.dtype))
        if predictions.shape != labels.shape:
            raise ValueError("predictions and labels must have the same shape, got "
                             "%r and %r" % (predictions.shape, labels.shape))
        predictions = predictions.ravel().astype(np.int64)
        labels = labels.ravel().astype(np.int64)

        counted = (labels >= 0) & (labels < self.n_classes)
        for void_label in self.void_labels:
            counted &= labels != void_label
        predictions = predictions[counted]
        labels = labels[counted]
        if predictions.size and (predictions.min() < 0
                                 or predictions.max() >= self.n_classes):
            raise ValueError("predictions must lie in 0 .. %d, got values from %d to %d"
                             % (self.n_classes - 1, predictions.min(), predictions.max()))

        pair_counts = np.bincount(labels * self.n_classes + predictions,
                                  minlength=self.n_classes ** 2)
        self.matrix += pair_counts.reshape(self.n_classes, self.n_classes)
        return self

    def _true_positives(self):
        return np.diag(self.matrix).astype(np.float64)

    def per_class_iou(self):
        """Jaccard index (IoU) of each class: ``TP / (TP + FP + FN)``.

        Returns
        -------
        numpy.ndarray of shape (n_classes,)
            NaN for a class absent from both labels and predictions.
        """
        true_positives = self._true_positives()
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - true_positives
        with np.errstate(invalid="ignore", divide="ignore"):
            return true_positives / union

    def mean_iou(self):
        """Mean of :meth:`per_class_iou` over the classes that have one."""
        return _mean_of_defined(self.per_class_iou())

    def pixel_accuracy(self):
        """Fraction of counted pixels predicted correctly (NaN if none counted)."""
        total = self.matrix.sum()
        return self._true_positives().sum() / total if total else np.nan

    def per_class_accuracy(self):
        """Recall of each class: ``TP / pixels labelled with the class``.

        Returns
        -------
        numpy.ndarray of shape (n_classes,)
            NaN for a class absent from the labels.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._true_positives() / self.matrix.sum(axis=1)

    def mean_class_accuracy(self):
        """Mean of :meth:`per_class_accuracy` over the classes in the labels."""
        return _mean_of_defined(self.per_class_accuracy())

    def frequency_weighted_iou(self):
        """IoU averaged with weights proportional to each class's pixel count.

        ``sum_c (labelled_c / total) * IoU_c`` over the classes present in
        the labels (NaN if no pixel was counted).
        """
        labelled = self.matrix.sum(axis=1)
        total = labelled.sum()
        if not total:
            return np.nan
        present = labelled > 0
        return float(np.sum(labelled[present] * self.per_class_iou()[present]) / total)


def _matrix(confusion):
    matrix = confusion.matrix if isinstance(confusion, ConfusionMatrix) else confusion
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError("a confusion matrix must be square (classes x classes), got shape %r"
                         % (matrix.shape,))
    return matrix.astype(np.float64)


def gluoncv_scores(confusion):
    """pixAcc, per-class IoU and mIoU as Gluon-CV's ``SegmentationMetric.get`` computes them.

    Parameters
    ----------
    confusion : ConfusionMatrix or array_like of shape (n_classes, n_classes)
        ``[true, predicted]`` counts over the non-ignored pixels.

    Returns
    -------
    pix_acc : float
        ``trace / (eps + total)`` (0 for an empty matrix).
    iou : numpy.ndarray of shape (n_classes,)
        ``TP / (eps + TP + FP + FN)``: 0 for a class absent from labels and predictions.
    mean_iou : float
        ``iou.mean()`` over all classes.
    """
    matrix = _matrix(confusion)
    eps = np.spacing(1)
    true_positives = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positives
    iou = true_positives / (eps + union)
    return float(true_positives.sum() / (eps + matrix.sum())), iou, float(iou.mean())


def torchvision_scores(confusion):
    """The scores of torchvision's reference ``ConfusionMatrix.compute`` and ``__str__``.

    Parameters
    ----------
    confusion : ConfusionMatrix or array_like of shape (n_classes, n_classes)

    Returns
    -------
    global_accuracy : float
        ``trace / total`` ("global correct").
    class_accuracy : numpy.ndarray
        ``TP / labelled`` per class ("average row correct"): NaN for a class absent from
        the labels.
    iou : numpy.ndarray
        ``TP / (TP + FP + FN)``: NaN for a class absent from labels and predictions.
    mean_iou : float
        ``iou.mean()``: NaN as soon as one class is NaN.
    """
    matrix = _matrix(confusion)
    true_positives = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        global_accuracy = true_positives.sum() / matrix.sum()
        class_accuracy = true_positives / matrix.sum(axis=1)
        iou = true_positives / (matrix.sum(axis=1) + matrix.sum(axis=0) - true_positives)
    return float(global_accuracy), class_accuracy, iou, float(np.mean(iou))


class SegmentationMetric:
    """Gluon-CV's ``SegmentationMetric``: pixAcc and mIoU accumulated over batches.

    Parameters
    ----------
    n_classes : int
    ignore_label : int, sequence of int or None
        Labels that are not counted (Gluon-CV: -1; this package's datasets: ``n_classes``).
        Labels outside ``0 .. n_classes - 1`` are never counted.

    Attributes
    ----------
    confusion : ConfusionMatrix
        The counts; :func:`torchvision_scores` and the :class:`ConfusionMatrix` methods
        read the same data.

    Notes
    -----
    Gluon-CV sums correct/labelled pixels and per-class intersection/union over the
    batches, which is what the confusion matrix holds, so :meth:`get` equals Gluon-CV's
    ``get`` for labels in ``0 .. n_classes - 1`` or ignored.

    Examples
    --------
    >>> metric = SegmentationMetric(3, ignore_label=255)
    >>> metric.update(np.array([[0, 1, 255]]), np.array([[0, 2, 1]]))
    >>> [round(value, 6) for value in metric.get()]
    [0.5, 0.333333]
    """

    def __init__(self, n_classes, ignore_label=None):
        self.confusion = ConfusionMatrix(n_classes, void_label=ignore_label)
        self.n_classes = self.confusion.n_classes

    def reset(self):
        """Set every count back to zero."""
        self.confusion.reset()

    def update(self, labels, predictions):
        """Add a batch (Gluon-CV's argument order: labels first).

        Parameters
        ----------
        labels : array_like of int, shape (B, H, W) or (H, W)
        predictions : array_like
            Class scores of shape (B, n_classes, H, W) or (n_classes, H, W) (the argmax
            over the class axis is taken), or integer class maps of the labels' shape.
        """
        labels = np.asarray(labels)
        predictions = np.asarray(predictions)
        if predictions.ndim == labels.ndim + 1:
            class_axis = 0 if labels.ndim == 2 else 1
            if predictions.shape[class_axis] != self.n_classes:
                raise ValueError(
                    "score maps must have %d classes on axis %d, got shape %r for labels of "
                    "shape %r" % (self.n_classes, class_axis, predictions.shape, labels.shape))
            predictions = np.argmax(predictions, axis=class_axis)
        self.confusion.update(predictions, labels)

    def get(self):
        """``(pixAcc, mIoU)`` over everything added so far (see :func:`gluoncv_scores`)."""
        pix_acc, _, mean_iou = gluoncv_scores(self.confusion)
        return pix_acc, mean_iou

    def per_class_iou(self):
        """Gluon-CV's per-class IoU (0 for a class absent from labels and predictions)."""
        return gluoncv_scores(self.confusion)[1]


def _mean_of_defined(values):
    """Mean of the non-NaN entries; NaN (without a warning) if there are none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else np.nan
