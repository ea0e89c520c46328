"""The Theano names the tutorials use, against NumPy and hand-computed results."""

import numpy as np
import pytest

from fcn8_lasagne.compile import HostFunction
from tests import reference
from tests.conftest import FAST_MODE


def _softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_categorical_crossentropy_against_numpy(installed, rng):
    import theano
    import theano.tensor as T

    probabilities = _softmax_rows(rng.normal(size=(5, 3))).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0], dtype=np.int32)
    coding, indices, one_hot = T.matrix(), T.ivector(), T.matrix()
    losses = theano.function([coding, indices, one_hot],
                             [T.nnet.categorical_crossentropy(coding, indices),
                              T.nnet.categorical_crossentropy(coding, one_hot)], mode=FAST_MODE)
    by_index, by_one_hot = losses(probabilities, labels, np.eye(3, dtype=np.float32)[labels])
    expected = -np.log(probabilities[np.arange(5), labels])
    np.testing.assert_allclose(by_index, expected, rtol=1e-6)
    np.testing.assert_allclose(by_one_hot, expected, rtol=1e-6)
    with pytest.raises(TypeError, match="rank mismatch"):
        T.nnet.categorical_crossentropy(coding, T.tensor3())


def test_softmax_and_activations_against_numpy(installed, rng):
    import theano
    import theano.tensor as T

    x = rng.normal(scale=3, size=(4, 6)).astype(np.float32)
    v = T.matrix()
    outputs = [T.nnet.softmax(v), T.nnet.logsoftmax(v), T.nnet.relu(v), T.nnet.relu(v, 0.1),
               T.nnet.elu(v), T.nnet.sigmoid(v), T.nnet.hard_sigmoid(v),
               T.nnet.ultra_fast_sigmoid(v), T.nnet.softsign(v), T.nnet.softplus(v)]
    values = theano.function([v], outputs, mode=FAST_MODE)(x)
    sigmoid = 1 / (1 + np.exp(-x))
    expected = [_softmax_rows(x), np.log(_softmax_rows(x)), np.maximum(x, 0),
                np.where(x > 0, x, 0.1 * x), np.where(x > 0, x, np.expm1(x)), sigmoid,
                np.clip(0.2 * x + 0.5, 0, 1), sigmoid, x / (1 + np.abs(x)), np.log1p(np.exp(x))]
    for got, want in zip(values[:7], expected[:7]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # ultra_fast_sigmoid is Theano's piecewise approximation of tanh(x / 2)
    half = np.abs(0.5 * x)
    approximation = np.where(half < 1.7, 1.5 * half / (1 + half),
                             np.where(half < 3, 0.935409070603099
                                      + 0.0458812946797165 * (half - 1.7), 0.99505475368673))
    np.testing.assert_allclose(values[7], 0.5 * np.sign(x) * approximation + 0.5, rtol=1e-5)
    assert 0.005 < np.abs(values[7] - sigmoid).max() < 0.03  # an approximation indeed
    np.testing.assert_allclose(values[8], expected[8], rtol=1e-6)
    np.testing.assert_allclose(values[9], expected[9], rtol=1e-5)
    # a vector becomes a one-row matrix, as Theano's Softmax op made it
    row = T.nnet.softmax(T.vector())
    assert row.ndim == 2
    with pytest.raises(ValueError, match="1-d or 2-d"):
        T.nnet.softmax(T.tensor3())


def test_binary_crossentropy_and_confusion_matrix(installed):
    import theano
    import theano.tensor as T

    p, t = T.vector(), T.vector()
    actual, pred = T.ivector(), T.ivector()
    conf, order = T.nnet.confusion_matrix(actual, pred)
    fn = theano.function([p, t, actual, pred],
                         [T.nnet.binary_crossentropy(p, t),
                          T.nnet.sigmoid_binary_crossentropy(p, t), conf, order],
                         mode=FAST_MODE)
    probs = np.float32([0.1, 0.7, 0.5])
    targets = np.float32([0, 1, 1])
    bce, sbce, counts, labels = fn(probs, targets, np.int32([0, 2, 2, 5]), np.int32([0, 2, 5, 5]))
    np.testing.assert_allclose(bce, -(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)),
                               rtol=1e-6)
    sig = 1 / (1 + np.exp(-probs))
    np.testing.assert_allclose(sbce, -(targets * np.log(sig) + (1 - targets) * np.log(1 - sig)),
                               rtol=1e-5)
    np.testing.assert_array_equal(labels, [0, 2, 5])
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_function_compiles_with_fcn8_compile_and_applies_updates(installed):
    import theano
    import theano.tensor as T

    counter = theano.shared(np.float32(0), name="counter")
    x = T.scalar()
    step = theano.function([x], counter * 2, updates=[(counter, counter + x)])
    assert isinstance(step, HostFunction)  # fcn8_lasagne.compile.function on the CPU
    assert [float(step(np.float32(value))) for value in (1.5, 2.0, 0.5)] == [0.0, 3.0, 7.0]
    assert float(counter.get_value()) == 4.0
    # Theano's positional order: inputs, outputs, mode, updates
    fast = theano.function([x], x + 1, FAST_MODE)
    assert float(fast(np.float32(1))) == 2.0


def test_set_subtensor_nonzero_and_jaccard_pattern(installed):
    """The mask and confusion-matrix constructions of train_fcn8.py's metrics."""
    import theano
    import theano.tensor as T

    y_true, y_pred = T.ivector(), T.ivector()
    mask = T.ones_like(y_true, dtype=theano.config.floatX)
    indices = T.eq(y_true, 2).nonzero()
    if any(indices):  # Theano: a symbolic variable is true
        mask = T.set_subtensor(mask[indices], 0.)
    cm = T.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            cm = T.set_subtensor(cm[i, j], T.sum(T.eq(y_pred, i) * T.eq(y_true, j)))
    fn = theano.function([y_true, y_pred], [mask, cm], mode=FAST_MODE)
    got_mask, got_cm = fn(np.int32([0, 1, 2, 1, 2]), np.int32([0, 1, 1, 0, 0]))
    np.testing.assert_array_equal(got_mask, [1, 1, 0, 1, 0])
    # cm[i, j]: predicted i, true j (void pixels counted too, as in the tutorial)
    np.testing.assert_array_equal(got_cm, [[1, 1], [0, 1]])


def test_conv2d_pool_2d_and_abstract_conv_against_numpy(installed, rng):
    import theano
    import theano.tensor as T
    from theano.tensor.nnet import abstract_conv
    from theano.tensor.signal.pool import pool_2d

    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    vx, vw = T.tensor4(), T.tensor4()
    conved = T.nnet.conv2d(vx, vw, border_mode="half", subsample=(2, 1), filter_flip=False)
    pooled = pool_2d(vx, ws=(2, 2), ignore_border=True, mode="max")
    transposed = abstract_conv.AbstractConv2d_gradInputs(
        imshp=(None, 3, None, None), kshp=(4, 3, 3, 3), subsample=(2, 2),
        border_mode="valid", filter_flip=True)(vw, conved, (10, 14))
    fn = theano.function([vx, vw], [conved, pooled, transposed])
    got_conv, got_pool, got_transposed = fn(x, w)
    expected_conv = reference.conv2d(x, w, stride=(2, 1), pad=1, flip=False)
    np.testing.assert_allclose(got_conv, expected_conv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_pool, reference.pool2d(x, (2, 2)), rtol=1e-6)
    np.testing.assert_allclose(
        got_transposed,
        reference.conv2d_transpose(expected_conv, w, stride=2, flip=True, output_size=(10, 14)),
        rtol=1e-4, atol=1e-4)
    # shapes as Theano computed them: (7 + 2 - 3) // 2 + 1 = 4 rows, 6 columns
    assert abstract_conv.get_conv_output_shape((2, 3, 7, 6), (4, 3, 3, 3), "half",
                                               (2, 1)) == (2, 4, 4, 6)
    assert abstract_conv.get_conv_shape_1axis(10, 4, "full", 3) == 5  # (10 + 6 - 4) // 3 + 1
    assert abstract_conv.get_conv_shape_1axis(None, 4, "valid", 1) is None


def test_mrg_random_streams_shapes_and_statistics(installed):
    import theano
    import theano.tensor as T
    from theano.sandbox.rng_mrg import MRG_RandomStreams

    streams = MRG_RandomStreams(seed=1)
    p = T.scalar()
    uniform = streams.uniform((200, 50), low=2.0, high=3.0)
    mask = streams.binomial((200, 50), p=p, dtype=theano.config.floatX)
    normal = streams.normal(size=(4000,), avg=1.0, std=2.0)
    one_hot = streams.multinomial(pvals=T.as_tensor_variable(np.float32([[0.2, 0.8]] * 500)))
    fn = theano.function([p], [uniform, mask, normal, one_hot])
    first = fn(np.float32(0.25))
    second = fn(np.float32(0.25))
    u, m, n, h = first
    assert u.shape == (200, 50) and u.dtype == np.float32 and m.dtype == np.float32
    assert 2.0 <= u.min() and u.max() < 3.0 and abs(u.mean() - 2.5) < 0.01
    assert set(np.unique(m)) <= {0.0, 1.0} and abs(m.mean() - 0.25) < 0.02
    assert n.shape == (4000,) and abs(n.mean() - 1.0) < 0.15 and abs(n.std() - 2.0) < 0.15
    assert h.shape == (500, 2) and (h.sum(axis=1) == 1).all() and abs(h[:, 1].mean() - 0.8) < 0.06
    assert not np.array_equal(u, second[0])  # the generators advance with every call
    with pytest.raises(NotImplementedError):
        streams.binomial((2,), n=2)
    streams.seed(7)
    reseeded = fn(np.float32(0.5))
    streams.seed(7)
    np.testing.assert_array_equal(fn(np.float32(0.5))[0], reseeded[0])  # seed() restarts


def test_shared_randomstreams(installed):
    import theano
    from theano.tensor.shared_randomstreams import RandomStreams

    streams = RandomStreams(seed=3)
    integers = streams.random_integers((1000,), low=1, high=3)
    counts = streams.binomial((1000,), n=4, p=0.5)
    values = theano.function([], [integers, counts])()
    assert set(np.unique(values[0])) == {1, 2, 3}  # both ends included
    assert values[1].min() >= 0 and values[1].max() <= 4 and abs(values[1].mean() - 2) < 0.15
    again = RandomStreams(seed=3)
    repeat = theano.function([], again.random_integers((1000,), low=1, high=3))()
    np.testing.assert_array_equal(repeat, values[0])  # the same seed draws the same numbers


def test_clone_scan_and_shared_broadcastable(installed):
    import theano
    import theano.tensor as T

    x, y = T.scalar(), T.scalar()
    doubled = theano.clone(x * 2 + 1, replace={x: y})
    assert float(theano.function([y], doubled, mode=FAST_MODE)(np.float32(3))) == 7.0
    v = T.vector()
    outputs, updates = theano.scan(lambda element, total: total + element, sequences=v,
                                   outputs_info=T.zeros((), dtype=v.dtype))
    cumulative = theano.function([v], outputs, updates=updates, mode=FAST_MODE)
    np.testing.assert_allclose(cumulative(np.float32([1, 2, 3])), [1, 3, 6])
    bias = theano.shared(np.zeros((1, 3), dtype=np.float32), broadcastable=(True, False))
    assert bias.type.broadcastable == (True, False)


def test_theano_flags_choose_the_device(installed):
    import pytensor
    import theano
    import theano.tensor as T

    from fcn8_lasagne.compile import ShapeSpecializedFunction

    floatx = pytensor.config.floatX
    try:
        installed.apply_theano_flags("floatX=float32, device=cuda0")
        assert installed.get_device() == "gpu" and pytensor.config.floatX == "float32"
        installed.apply_theano_flags("device=cpu")
        assert installed.get_device() == "cpu"
        with pytest.warns(UserWarning, match="'optimizer' is ignored"):
            installed.apply_theano_flags("optimizer=fast_compile")
        installed.set_device("jax")
        x = T.vector()
        doubled = theano.function([x], 2 * x)
        assert isinstance(doubled, ShapeSpecializedFunction)
        np.testing.assert_allclose(doubled(np.float32([1, 2])), [2, 4])
        with pytest.raises(ValueError, match="unknown device"):
            installed.set_device("tpu")
    finally:
        pytensor.config.floatX = floatx
        installed.set_device("cpu")
