"""Tests of fcn8_lasagne.metrics against NumPy formulas and hand-computed scores."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import metrics

MODE = "FAST_COMPILE"
N_CLASSES = 4
VOID = 4  # labels >= N_CLASSES are void, as in the tutorial's datasets


def compile_fn(inputs, outputs):
    return pytensor.function(inputs, outputs, mode=MODE)


def numpy_confusion_matrix(predictions, labels, n_classes):
    """cm[t, p] by a literal double loop over classes, as the tutorial counted it."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for true_class in range(n_classes):
        for predicted_class in range(n_classes):
            cm[true_class, predicted_class] = np.sum(
                (labels == true_class) & (predictions == predicted_class))
    return cm


@pytest.fixture
def batch():
    """Probabilities and labels with void pixels and a class (2) never seen."""
    rng = np.random.default_rng(42)
    n_pixels = 60
    scores = rng.random((n_pixels, N_CLASSES))
    scores[:, 2] = 0.0  # class 2 is never predicted ...
    probabilities = (scores / scores.sum(axis=1, keepdims=True)).astype("float32")
    probabilities[0] = [1.0, 0.0, 0.0, 0.0]  # a prediction the clip must catch
    labels = rng.choice([0, 1, 3, VOID, VOID + 1], size=n_pixels).astype("int32")
    labels[0] = 1  # ... nor labelled; pixel 0 is confidently wrong
    labels[1] = VOID
    return probabilities, labels


def numpy_crossentropy(probabilities, labels, void_labels):
    keep = ~np.isin(labels, void_labels)
    clipped = np.clip(probabilities.astype(np.float64), 1e-6, 1 - 1e-6)
    picked = clipped[np.nonzero(keep)[0], labels[keep]]
    return np.mean(-np.log(picked))


def test_epsilon_is_the_tutorials():
    assert metrics._EPSILON == 1e-6


def test_crossentropy_metric_masks_void_pixels(batch):
    probabilities, labels = batch
    y_pred, y_true = pt.matrix("y_pred"), pt.ivector("y_true")
    loss = compile_fn([y_pred, y_true],
                      metrics.crossentropy_metric(y_pred, y_true, [VOID, VOID + 1]))
    result = loss(probabilities, labels)
    expected = numpy_crossentropy(probabilities, labels, [VOID, VOID + 1])
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    assert result > -np.log(1e-6) / len(labels)  # the clipped pixel 0 counts


def test_crossentropy_metric_one_hot_and_all_void():
    y_pred, y_true = pt.matrix("y_pred"), pt.matrix("y_true")
    probabilities = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]], dtype="float32")
    labels = np.array([0, 0, 1])
    loss = compile_fn([y_pred, y_true],
                      metrics.crossentropy_metric(y_pred, y_true, [], one_hot=True))
    one_hot = np.eye(2, dtype="float32")[labels]
    expected = -np.mean(np.log([0.7, 0.2, 0.4]))
    np.testing.assert_allclose(loss(probabilities, one_hot), expected, rtol=1e-6)

    labels_var = pt.ivector()
    all_void = compile_fn([y_pred, labels_var],
                          metrics.crossentropy_metric(y_pred, labels_var, [5]))
    with np.errstate(invalid="ignore"):
        assert np.isnan(all_void(probabilities, np.full(3, 5, dtype="int32")))


def test_crossentropy_metric_gradient_skips_void_pixels():
    y_pred, y_true = pt.matrix("y_pred"), pt.ivector("y_true")
    loss = metrics.crossentropy_metric(y_pred, y_true, [2])
    grad = compile_fn([y_pred, y_true], pt.grad(loss, y_pred))
    probabilities = np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]], dtype="float32")
    labels = np.array([1, 2, 0], dtype="int32")
    expected = np.zeros((3, 2))
    expected[0, 1] = -1 / 0.5 / 2
    expected[2, 0] = -1 / 0.9 / 2
    np.testing.assert_allclose(grad(probabilities, labels), expected, rtol=1e-5)


def test_accuracy_metric_from_probabilities_and_indices(batch):
    probabilities, labels = batch
    y_pred, y_true, y_index = pt.matrix("y_pred"), pt.ivector("y_true"), pt.ivector()
    accuracy = compile_fn(
        [y_pred, y_index, y_true],
        [metrics.accuracy_metric(y_pred, y_true, [VOID, VOID + 1]),
         metrics.accuracy_metric(y_index, y_true, [VOID, VOID + 1]),
         metrics.accuracy_metric(y_pred, y_true, [])])
    predictions = np.argmax(probabilities, axis=1).astype("int32")
    masked, from_indices, unmasked = accuracy(probabilities, predictions, labels)

    keep = labels < VOID
    np.testing.assert_allclose(masked, np.mean(predictions[keep] == labels[keep]), rtol=1e-6)
    np.testing.assert_allclose(from_indices, masked, rtol=1e-6)
    np.testing.assert_allclose(unmasked, np.mean(predictions == labels), rtol=1e-6)
    assert masked != unmasked


def test_jaccard_metric_equals_double_loop_confusion_matrix(batch):
    probabilities, labels = batch
    y_pred, y_true, y_index = pt.matrix("y_pred"), pt.ivector("y_true"), pt.ivector()
    jaccard_pieces = compile_fn(
        [y_pred, y_index, y_true],
        [metrics.jaccard_metric(y_pred, y_true, N_CLASSES),
         metrics.jaccard_metric(y_index, y_true, N_CLASSES)])
    predictions = np.argmax(probabilities, axis=1).astype("int32")
    from_probabilities, from_indices = jaccard_pieces(probabilities, predictions, labels)

    cm = numpy_confusion_matrix(predictions, labels, N_CLASSES)
    true_positives = np.diag(cm)
    false_positives = cm.sum(axis=0) - true_positives
    false_negatives = cm.sum(axis=1) - true_positives
    expected = np.stack([true_positives, true_positives + false_positives + false_negatives])

    assert from_probabilities.dtype == np.float32 and from_probabilities.shape == (2, 4)
    np.testing.assert_array_equal(from_probabilities, expected)
    np.testing.assert_array_equal(from_indices, expected)
    assert expected[1, 2] == 0  # class 2: absent from labels and predictions
    assert cm.sum() < len(labels)  # void pixels fell out


def test_jaccard_metric_one_hot_and_bad_input():
    y_pred, y_true = pt.matrix("y_pred"), pt.matrix("y_true")
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype="float32")
    one_hot = np.eye(2, dtype="float32")[[0, 0, 1]]
    result = compile_fn([y_pred, y_true],
                        metrics.jaccard_metric(y_pred, y_true, 2, one_hot=True))
    # cm[t, p] = [[1, 1], [1, 0]]
    np.testing.assert_array_equal(result(probabilities, one_hot), [[1, 0], [3, 2]])

    with pytest.raises(ValueError, match="n_classes"):
        metrics.jaccard_metric(y_pred, pt.ivector(), 0)
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        metrics.jaccard_metric(pt.tensor3(), pt.ivector(), 2)
    with pytest.raises(TypeError, match="integer vector"):
        metrics.jaccard_metric(y_pred, pt.vector(), 2)
    with pytest.raises(ValueError, match="2-D"):
        metrics.crossentropy_metric(pt.vector(), pt.ivector(), [])


def test_tutorial_aliases():
    assert metrics.crossentropy is metrics.crossentropy_metric
    assert metrics.accuracy is metrics.accuracy_metric
    assert metrics.jaccard is metrics.jaccard_metric


def test_jaccard_from_totals_sums_batches_as_train_fcn8():
    rng = np.random.default_rng(7)
    y_index, y_true = pt.ivector(), pt.ivector()
    per_batch = compile_fn([y_index, y_true], metrics.jaccard_metric(y_index, y_true, 3))
    totals = np.zeros((2, 3))
    scores = metrics.ConfusionMatrix(3, void_label=3)
    for _ in range(3):
        predictions = rng.integers(0, 3, 40).astype("int32")
        labels = rng.integers(0, 4, 40).astype("int32")
        totals += per_batch(predictions, labels)
        scores.update(predictions, labels)

    per_class, mean = metrics.jaccard_from_totals(totals)
    np.testing.assert_allclose(per_class, totals[0] / totals[1])
    np.testing.assert_allclose(per_class, scores.per_class_iou(), rtol=1e-12)
    np.testing.assert_allclose(mean, np.mean(totals[0] / totals[1]))

    absent = np.array([[3.0, 0.0], [6.0, 0.0]])
    per_class, mean = metrics.jaccard_from_totals(absent)
    assert per_class[0] == 0.5 and np.isnan(per_class[1]) and np.isnan(mean)
    with pytest.raises(ValueError, match=r"\(2, n_classes\)"):
        metrics.jaccard_from_totals(np.zeros((3, 2)))


# --- ConfusionMatrix ---------------------------------------------------------

# 3 classes, void label 3; 255 is out of range and ignored too.
HAND_LABELS = np.array([[0, 0, 0, 1, 1, 2], [2, 2, 2, 3, 255, 3]])
HAND_PREDICTIONS = np.array([[0, 0, 1, 1, 2, 2], [2, 2, 0, 1, 0, 7]])
# cm[t, p] = [[2, 1, 0], [0, 1, 1], [1, 0, 3]] over 9 counted pixels.


def test_confusion_matrix_hand_computed_scores():
    scores = metrics.ConfusionMatrix(3, void_label=3)
    assert scores.update(HAND_PREDICTIONS, HAND_LABELS) is scores
    np.testing.assert_array_equal(scores.matrix, [[2, 1, 0], [0, 1, 1], [1, 0, 3]])
    np.testing.assert_allclose(scores.per_class_iou(), [2 / 4, 1 / 3, 3 / 5])
    np.testing.assert_allclose(scores.mean_iou(), (1 / 2 + 1 / 3 + 3 / 5) / 3)
    np.testing.assert_allclose(scores.pixel_accuracy(), 6 / 9)
    np.testing.assert_allclose(scores.per_class_accuracy(), [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(scores.mean_class_accuracy(), (2 / 3 + 1 / 2 + 3 / 4) / 3)
    np.testing.assert_allclose(scores.frequency_weighted_iou(),
                               (3 * 2 / 4 + 2 * 1 / 3 + 4 * 3 / 5) / 9)


def test_confusion_matrix_absent_class_is_nan_and_excluded():
    scores = metrics.ConfusionMatrix(4, void_label=[3, 255])
    scores.update(HAND_PREDICTIONS[:, :5], HAND_LABELS[:, :5])
    scores.update(HAND_PREDICTIONS[:, 5:], HAND_LABELS[:, 5:])  # same pixels in two calls
    np.testing.assert_array_equal(scores.matrix[:3, :3], [[2, 1, 0], [0, 1, 1], [1, 0, 3]])
    iou = scores.per_class_iou()
    assert np.isnan(iou[3])
    np.testing.assert_allclose(scores.mean_iou(), (1 / 2 + 1 / 3 + 3 / 5) / 3)
    np.testing.assert_allclose(scores.mean_class_accuracy(), (2 / 3 + 1 / 2 + 3 / 4) / 3)

    # Predicted but never labelled: IoU 0 (counted), accuracy undefined (skipped).
    scores.update(np.array([3]), np.array([0]))
    assert scores.per_class_iou()[3] == 0.0
    assert np.isnan(scores.per_class_accuracy()[3])
    np.testing.assert_allclose(scores.mean_iou(), (2 / 5 + 1 / 3 + 3 / 5 + 0) / 4)

    scores.reset()
    assert scores.matrix.sum() == 0
    assert np.isnan(scores.mean_iou()) and np.isnan(scores.pixel_accuracy())
    assert np.isnan(scores.frequency_weighted_iou())


def test_confusion_matrix_rejects_bad_input():
    scores = metrics.ConfusionMatrix(3)
    with pytest.raises(ValueError, match="same shape"):
        scores.update(np.zeros(3, dtype=int), np.zeros(4, dtype=int))
    with pytest.raises(TypeError, match="integer class indices"):
        scores.update(np.zeros((3, 3)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"predictions must lie in 0 \.\. 2"):
        scores.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="n_classes"):
        metrics.ConfusionMatrix(0)
    assert scores.matrix.sum() == 0


# --- pixAcc and mIoU of Gluon-CV and torchvision ---------------------------------------------

def gluoncv_reference(batches, n_classes):
    """Gluon-CV's batch_pix_accuracy / batch_intersection_union (labels -1 = ignored)."""
    correct = labelled = 0
    inter = union = np.zeros(n_classes)
    for labels, scores in batches:
        predict = np.argmax(scores, 1).astype(np.int64) + 1
        target = labels.astype(np.int64) + 1
        labelled += np.sum(target > 0)
        correct += np.sum((predict == target) * (target > 0))
        predict = predict * (target > 0)
        intersection = predict * (predict == target)
        area_inter, _ = np.histogram(intersection, bins=n_classes, range=(1, n_classes))
        area_pred, _ = np.histogram(predict, bins=n_classes, range=(1, n_classes))
        area_lab, _ = np.histogram(target, bins=n_classes, range=(1, n_classes))
        inter = inter + area_inter
        union = union + area_pred + area_lab - area_inter
    iou = inter / (np.spacing(1) + union)
    return correct / (np.spacing(1) + labelled), iou.mean()


def test_segmentation_metric_hand_computed_with_an_absent_class_and_ignored_pixels():
    # 4 classes; class 3 appears in neither labels nor predictions; 255 ignored
    labels = np.array([[[0, 0, 1, 1],
                        [2, 2, 255, 255]]])
    predicted = np.array([[[0, 1, 1, 1],
                           [2, 0, 3, 2]]])    # the 3 and the last 2 fall on ignored pixels
    metric = metrics.SegmentationMetric(4, ignore_label=255)
    metric.update(labels, predicted)
    pix_acc, mean_iou = metric.get()
    # counted pixels: 6, correct: 0,1,1,2 -> 4
    assert pix_acc == pytest.approx(4 / 6, rel=1e-12)
    # IoU: class 0: TP 1, union {(0,0),(0,1),(1,1)} = 3; class 1: TP 2, union 3; class 2:
    # TP 1, union 2; class 3: 0 / (eps + 0) = 0
    expected_iou = np.array([1 / 3, 2 / 3, 1 / 2, 0.0])
    np.testing.assert_allclose(metric.per_class_iou(), expected_iou, rtol=1e-12)
    assert mean_iou == pytest.approx(expected_iou.mean(), rel=1e-12)
    # torchvision: the absent class makes the mean NaN; ours skips it
    accuracy, class_accuracy, iou, tv_mean = metrics.torchvision_scores(metric.confusion)
    assert accuracy == pytest.approx(4 / 6)
    np.testing.assert_allclose(class_accuracy, [1 / 2, 1, 1 / 2, np.nan])
    np.testing.assert_allclose(iou, [1 / 3, 2 / 3, 1 / 2, np.nan])
    assert np.isnan(tv_mean)
    assert metric.confusion.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_segmentation_metric_matches_gluoncv_reference_over_batches(rng):
    n_classes = 5
    metric = metrics.SegmentationMetric(n_classes, ignore_label=-1)
    batches = []
    for _ in range(3):
        scores = rng.standard_normal((2, n_classes, 6, 7))
        labels = rng.integers(0, n_classes - 1, (2, 6, 7))    # class 4 never labelled
        labels[rng.random(labels.shape) < 0.2] = -1
        batches.append((labels, scores))
        metric.update(labels, scores)
    pix_acc, mean_iou = metric.get()
    expected_pix_acc, expected_mean_iou = gluoncv_reference(batches, n_classes)
    assert pix_acc == pytest.approx(expected_pix_acc, rel=1e-12)
    assert mean_iou == pytest.approx(expected_mean_iou, rel=1e-12)
    # accumulated counts equal one update with everything
    whole = metrics.SegmentationMetric(n_classes, ignore_label=-1)
    whole.update(np.concatenate([b[0] for b in batches]),
                 np.concatenate([b[1] for b in batches]))
    assert whole.get() == metric.get()
    metric.reset()
    assert metric.get() == (0.0, 0.0)


def test_gluoncv_and_torchvision_scores_agree_when_every_class_is_present():
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 3, 4]])
    pix_acc, iou, mean_iou = metrics.gluoncv_scores(matrix)
    accuracy, _, tv_iou, tv_mean = metrics.torchvision_scores(matrix)
    assert pix_acc == pytest.approx(16 / 23) and accuracy == pytest.approx(16 / 23)
    np.testing.assert_allclose(iou, [5 / 8, 7 / 14, 4 / 8], rtol=1e-12)
    np.testing.assert_allclose(iou, tv_iou, rtol=1e-12)
    assert mean_iou == pytest.approx(tv_mean, rel=1e-12)


def test_segmentation_metric_refuses_score_maps_of_another_class_count():
    metric = metrics.SegmentationMetric(3)
    with pytest.raises(ValueError, match="score maps must have 3 classes"):
        metric.update(np.zeros((1, 2, 2), int), np.zeros((1, 4, 2, 2)))
    with pytest.raises(ValueError, match="must be square"):
        metrics.gluoncv_scores(np.zeros((2, 3)))
