"""Tests of fcn8_lasagne.objectives against NumPy formulas written out here."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import objectives

MODE = "FAST_COMPILE"


def compile_fn(inputs, outputs):
    return pytensor.function(inputs, outputs, mode=MODE)


def random_probabilities(rng, n_rows, n_classes):
    scores = rng.random((n_rows, n_classes)) + 0.05
    return (scores / scores.sum(axis=1, keepdims=True)).astype("float32")


def test_binary_crossentropy(rng):
    predictions = pt.matrix("predictions")
    targets = pt.matrix("targets")
    loss = compile_fn([predictions, targets],
                      objectives.binary_crossentropy(predictions, targets))
    p = rng.uniform(0.05, 0.95, (4, 3)).astype("float32")
    t = rng.uniform(0, 1, (4, 3)).astype("float32")
    expected = -t * np.log(p) - (1 - t) * np.log(1 - p)
    np.testing.assert_allclose(loss(p, t), expected, rtol=1e-5)


def test_binary_crossentropy_aligns_vector_targets_with_column_predictions(rng):
    column = pt.tensor("column", shape=(None, 1), dtype="float32")
    targets = pt.vector("targets")
    loss = objectives.binary_crossentropy(column, targets)
    assert loss.ndim == 2 and loss.broadcastable == (False, True)
    p = rng.uniform(0.05, 0.95, (5, 1)).astype("float32")
    t = np.array([0, 1, 1, 0, 1], dtype="float32")
    expected = -t[:, None] * np.log(p) - (1 - t[:, None]) * np.log(1 - p)
    np.testing.assert_allclose(compile_fn([column, targets], loss)(p, t), expected,
                               rtol=1e-5)


def test_categorical_crossentropy_with_class_indices_and_matrices(rng):
    predictions = pt.matrix("predictions")
    labels = pt.ivector("labels")
    soft_targets = pt.matrix("soft_targets")
    loss = compile_fn(
        [predictions, labels, soft_targets],
        [objectives.categorical_crossentropy(predictions, labels),
         objectives.categorical_crossentropy(predictions, soft_targets),
         pt.grad(objectives.categorical_crossentropy(predictions, labels).sum(),
                 predictions)])
    p = random_probabilities(rng, 6, 4)
    y = np.array([0, 3, 1, 1, 2, 3], dtype="int32")
    t = random_probabilities(rng, 6, 4)

    from_indices, from_matrix, grad = loss(p, y, t)
    np.testing.assert_allclose(from_indices, -np.log(p[np.arange(6), y]), rtol=1e-6)
    np.testing.assert_allclose(from_matrix, -np.sum(t * np.log(p), axis=1), rtol=1e-5)
    expected_grad = np.zeros_like(p)
    expected_grad[np.arange(6), y] = -1 / p[np.arange(6), y]
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5)


def test_categorical_crossentropy_rejects_bad_targets():
    predictions = pt.matrix()
    with pytest.raises(TypeError, match="rank mismatch"):
        objectives.categorical_crossentropy(predictions, pt.tensor3())
    with pytest.raises(TypeError, match="integers"):
        objectives.categorical_crossentropy(predictions, pt.vector())


def test_squared_error(rng):
    a, b = pt.matrix("a"), pt.matrix("b")
    x = rng.standard_normal((3, 4)).astype("float32")
    y = rng.standard_normal((3, 4)).astype("float32")
    result = compile_fn([a, b], objectives.squared_error(a, b))(x, y)
    np.testing.assert_allclose(result, (x - y) ** 2, rtol=1e-6)


@pytest.mark.parametrize("log_odds", [True, False])
@pytest.mark.parametrize("binary", [True, False])
def test_binary_hinge_loss(rng, log_odds, binary):
    predictions, targets = pt.vector("predictions"), pt.vector("targets")
    delta = 0.7
    loss = compile_fn([predictions, targets], objectives.binary_hinge_loss(
        predictions, targets, delta=delta, log_odds=log_odds, binary=binary))
    p = rng.uniform(0.05, 0.95, 8).astype("float32")
    labels01 = rng.integers(0, 2, 8).astype("float32")
    t = labels01 if binary else 2 * labels01 - 1

    scores = p if log_odds else np.log(p / (1 - p))
    signs = 2 * labels01 - 1
    expected = np.maximum(0, delta - scores * signs)
    np.testing.assert_allclose(loss(p, t), expected, rtol=1e-5, atol=1e-6)


def test_binary_hinge_loss_requires_log_odds():
    with pytest.raises(FutureWarning, match="log_odds"):
        objectives.binary_hinge_loss(pt.vector(), pt.vector())


def test_multiclass_hinge_loss(rng):
    predictions = pt.matrix("predictions")
    labels = pt.ivector("labels")
    one_hot = pt.matrix("one_hot")
    delta = 0.3
    loss = compile_fn(
        [predictions, labels, one_hot],
        [objectives.multiclass_hinge_loss(predictions, labels, delta),
         objectives.multiclass_hinge_loss(predictions, one_hot, delta)])
    p = random_probabilities(rng, 7, 4)
    y = np.array([0, 1, 2, 3, 3, 2, 0], dtype="int32")
    expected = np.empty(7)
    for row in range(7):
        others = [p[row, c] for c in range(4) if c != y[row]]
        expected[row] = max(0.0, max(others) - p[row, y[row]] + delta)

    from_indices, from_one_hot = loss(p, y, np.eye(4, dtype="float32")[y])
    np.testing.assert_allclose(from_indices, expected, rtol=1e-6)
    np.testing.assert_allclose(from_one_hot, expected, rtol=1e-6)
    with pytest.raises(TypeError, match="rank mismatch"):
        objectives.multiclass_hinge_loss(predictions, pt.tensor3())


def test_binary_accuracy():
    predictions, targets = pt.vector("predictions"), pt.vector("targets")
    accuracy = compile_fn([predictions, targets],
                          [objectives.binary_accuracy(predictions, targets),
                           objectives.binary_accuracy(predictions, targets, threshold=0.8)])
    p = np.array([0.1, 0.5, 0.7, 0.9, 0.49], dtype="float32")
    t = np.array([0, 1, 0, 1, 1], dtype="float32")
    at_half, at_08 = accuracy(p, t)
    np.testing.assert_array_equal(at_half, [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(at_08, [1, 0, 1, 1, 0])


def test_categorical_accuracy_top_1_and_top_k(rng):
    predictions = pt.matrix("predictions")
    labels = pt.ivector("labels")
    one_hot = pt.matrix("one_hot")
    accuracy = compile_fn(
        [predictions, labels, one_hot],
        [objectives.categorical_accuracy(predictions, labels),
         objectives.categorical_accuracy(predictions, one_hot),
         objectives.categorical_accuracy(predictions, labels, top_k=2)])
    p = random_probabilities(rng, 20, 5)
    y = rng.integers(0, 5, 20).astype("int32")
    top1, top1_one_hot, top2 = accuracy(p, y, np.eye(5, dtype="float32")[y])

    expected_top1 = np.argmax(p, axis=1) == y
    ranks = np.argsort(-p, axis=1)
    expected_top2 = np.array([y[i] in ranks[i, :2] for i in range(20)])
    assert expected_top1.sum() < expected_top2.sum()  # the inputs tell them apart
    np.testing.assert_array_equal(top1, expected_top1)
    np.testing.assert_array_equal(top1_one_hot, expected_top1)
    np.testing.assert_array_equal(top2, expected_top2)


def test_categorical_accuracy_rejects_bad_input():
    with pytest.raises(TypeError, match="rank mismatch"):
        objectives.categorical_accuracy(pt.matrix(), pt.tensor3())
    with pytest.raises(ValueError, match="top_k"):
        objectives.categorical_accuracy(pt.matrix(), pt.ivector(), top_k=0)


def test_aggregate_modes(rng):
    loss, weights = pt.matrix("loss"), pt.matrix("weights")
    aggregated = compile_fn(
        [loss, weights],
        [objectives.aggregate(loss),
         objectives.aggregate(loss, mode="sum"),
         objectives.aggregate(loss, weights),
         objectives.aggregate(loss, weights, mode="sum"),
         objectives.aggregate(loss, weights, mode="normalized_sum")])
    x = rng.random((3, 4)).astype("float32")
    w = rng.integers(0, 2, (3, 4)).astype("float32")
    results = aggregated(x, w)
    expected = [x.mean(), x.sum(), (x * w).mean(), (x * w).sum(), (x * w).sum() / w.sum()]
    np.testing.assert_allclose(results, expected, rtol=1e-5)


def test_aggregate_rejects_bad_modes():
    with pytest.raises(ValueError, match="require weights"):
        objectives.aggregate(pt.vector(), mode="normalized_sum")
    with pytest.raises(ValueError, match="mode must be"):
        objectives.aggregate(pt.vector(), mode="median")


# --- huber_loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [1, 0.5, 2.5])
def test_huber_loss_matches_reference_on_both_branches(rng, delta):
    from tests.reference import lasagne_extras as ref

    predictions = pt.matrix("predictions")
    targets = pt.matrix("targets")
    kwargs = {} if delta == 1 else {"delta": delta}
    loss = compile_fn([predictions, targets],
                      objectives.huber_loss(predictions, targets, **kwargs))
    p = (3 * rng.standard_normal((5, 4))).astype("float32")
    t = (3 * rng.standard_normal((5, 4))).astype("float32")
    t[0, :2] = p[0, :2] + np.float32(delta)  # exactly at the boundary: quadratic branch
    out = loss(p, t)
    diff = np.abs(p - t)
    assert (diff <= delta).any() and (diff > delta).any()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.huber(p, t, delta), rtol=1e-5, atol=1e-6)


def test_huber_loss_gradient_is_the_clipped_difference(rng):
    predictions = pt.vector("predictions")
    targets = pt.vector("targets")
    loss = objectives.huber_loss(predictions, targets, delta=0.7).sum()
    gradient = compile_fn([predictions, targets], pytensor.grad(loss, predictions))
    p = rng.uniform(-2, 2, 50).astype("float32")
    t = rng.uniform(-2, 2, 50).astype("float32")
    np.testing.assert_allclose(gradient(p, t), np.clip(p - t, -0.7, 0.7), rtol=1e-5, atol=1e-6)


def test_huber_loss_default_delta_and_column_alignment(rng):
    import inspect

    assert inspect.signature(objectives.huber_loss).parameters["delta"].default == 1
    assert "huber_loss" in objectives.__all__
    predictions = pt.col("predictions")
    targets = pt.vector("targets")
    loss = compile_fn([predictions, targets], objectives.huber_loss(predictions, targets))
    p = np.array([[0.0], [3.0]], dtype="float32")
    t = np.array([0.5, 0.0], dtype="float32")
    np.testing.assert_allclose(loss(p, t), [[0.125], [2.5]])


# --- score-map losses of the dilated-ResNet FCNs --------------------------------------------

def numpy_cross_entropy_2d(scores, labels, ignore_label):
    """Mean of -log softmax(scores)[label] over the pixels whose label is not ignored."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    losses = []
    for b, *position in zip(*np.nonzero(labels != ignore_label)):
        losses.append(-log_probabilities[(b, labels[(b, *position)], *position)])
    return np.mean(losses) if losses else 0.0


def score_maps(rng, shape, n_classes, ignore_label, ignore_fraction=0.3):
    batch, *spatial = shape
    scores = (3 * rng.standard_normal((batch, n_classes, *spatial))).astype("float64")
    labels = rng.integers(0, n_classes, shape).astype("int32")
    labels[rng.random(shape) < ignore_fraction] = ignore_label
    return scores, labels


@pytest.mark.parametrize("ignore_label", [255, -1, 4])
def test_softmax_cross_entropy_2d_matches_numpy_and_torch(rng, ignore_label):
    torch = pytest.importorskip("torch")
    scores = pt.tensor4("scores", dtype="float64")
    labels = pt.itensor3("labels")
    loss = objectives.softmax_cross_entropy_2d(scores, labels, ignore_label=ignore_label)
    function = compile_fn([scores, labels], [loss, pt.grad(loss, scores)])
    s, y = score_maps(rng, (2, 5, 7), 4, ignore_label)
    value, gradient = function(s, y)

    np.testing.assert_allclose(value, numpy_cross_entropy_2d(s, y, ignore_label), rtol=1e-12)
    s_torch = torch.tensor(s, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(s_torch, torch.tensor(y, dtype=torch.long),
                                                 ignore_index=ignore_label)
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(gradient, s_torch.grad.numpy(), rtol=1e-10, atol=1e-14)
    # ignored pixels get no gradient
    assert np.all(gradient.transpose(0, 2, 3, 1)[y == ignore_label] == 0)


def test_softmax_cross_entropy_2d_float32_large_scores_and_other_ranks(rng):
    scores = pt.tensor3("scores")       # (B, C, L): a 1-D score map
    labels = pt.imatrix("labels")
    loss = objectives.softmax_cross_entropy_2d(scores, labels, ignore_label=255)
    assert loss.dtype == "float32"
    s, y = score_maps(rng, (3, 11), 5, 255)
    s = (s * 100).astype("float32")      # exp would overflow without the shift
    value = compile_fn([scores, labels], loss)(s, y)
    assert np.isfinite(value)
    np.testing.assert_allclose(value, numpy_cross_entropy_2d(s.astype(np.float64), y, 255),
                               rtol=1e-5)


def test_softmax_cross_entropy_2d_all_ignored_is_zero_with_zero_gradient():
    scores = pt.tensor4("scores")
    labels = pt.itensor3("labels")
    loss = objectives.softmax_cross_entropy_2d(scores, labels, ignore_label=255)
    value, gradient = compile_fn([scores, labels], [loss, pt.grad(loss, scores)])(
        np.ones((1, 3, 2, 2), "float32"), np.full((1, 2, 2), 255, "int32"))
    assert value == 0 and not gradient.any()


def test_mix_softmax_cross_entropy_is_main_plus_weighted_aux_each_averaged(rng):
    torch = pytest.importorskip("torch")
    main, aux = pt.tensor4("main", dtype="float64"), pt.tensor4("aux", dtype="float64")
    labels = pt.itensor3("labels")
    loss = objectives.mix_softmax_cross_entropy(main, aux, labels, aux_weight=0.5)
    function = compile_fn([main, aux, labels], [loss, *pt.grad(loss, [main, aux])])
    s_main, y = score_maps(rng, (2, 6, 4), 3, 255)
    s_aux = 2 * rng.standard_normal(s_main.shape)
    value, grad_main, grad_aux = function(s_main, s_aux, y)

    # torchvision's references/segmentation/train.py criterion
    t_main = torch.tensor(s_main, requires_grad=True)
    t_aux = torch.tensor(s_aux, requires_grad=True)
    target = torch.tensor(y, dtype=torch.long)
    expected = (torch.nn.functional.cross_entropy(t_main, target, ignore_index=255)
                + 0.5 * torch.nn.functional.cross_entropy(t_aux, target, ignore_index=255))
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grad_main, t_main.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad_aux, t_aux.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(value, numpy_cross_entropy_2d(s_main, y, 255)
                               + 0.5 * numpy_cross_entropy_2d(s_aux, y, 255), rtol=1e-12)


def test_mix_softmax_cross_entropy_class_follows_gluoncv_signature(rng):
    criterion = objectives.MixSoftmaxCrossEntropyLoss()
    assert (criterion.aux, criterion.aux_weight, criterion.ignore_label) == (True, 0.2, -1)
    main, aux = pt.tensor4("main", dtype="float64"), pt.tensor4("aux", dtype="float64")
    labels = pt.itensor3("labels")
    s_main, y = score_maps(rng, (1, 3, 5), 4, -1)
    s_aux = rng.standard_normal(s_main.shape)
    with_aux = compile_fn([main, aux, labels], criterion(main, aux, labels))(s_main, s_aux, y)
    np.testing.assert_allclose(with_aux, numpy_cross_entropy_2d(s_main, y, -1)
                               + 0.2 * numpy_cross_entropy_2d(s_aux, y, -1), rtol=1e-12)
    main_only = objectives.MixSoftmaxCrossEntropyLoss(aux=False)
    value = compile_fn([main, labels], main_only(main, labels))(s_main, y)
    np.testing.assert_allclose(value, numpy_cross_entropy_2d(s_main, y, -1), rtol=1e-12)
    with pytest.raises(TypeError, match=r"takes \(main, labels\), got 3"):
        main_only(main, aux, labels)


def test_softmax_cross_entropy_2d_refuses_bad_ranks_and_float_labels():
    with pytest.raises(TypeError, match="one axis less"):
        objectives.softmax_cross_entropy_2d(pt.tensor4("s"), pt.itensor4("y"))
    with pytest.raises(TypeError, match="integer class indices"):
        objectives.softmax_cross_entropy_2d(pt.tensor4("s"), pt.tensor3("y"))
