"""Tests of fcn8_lasagne.regularization against NumPy sums written out here.

The penalties themselves need no layers; the layer helpers are tested on a small
``DenseLayer`` network.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import regularization as reg
from fcn8_lasagne.layers import DenseLayer, InputLayer

MODE = "FAST_COMPILE"


def evaluate(expression):
    return pytensor.function([], expression, mode=MODE)()


@pytest.fixture
def arrays():
    rng = np.random.default_rng(5)
    return [rng.standard_normal((3, 4)).astype("float32"),
            rng.standard_normal((2, 2, 3)).astype("float32")]


def test_l1_and_l2(arrays):
    x = pt.tensor3("x")
    values = pytensor.function([x], [reg.l1(x), reg.l2(x)], mode=MODE)(arrays[1])
    np.testing.assert_allclose(values[0], np.sum(np.abs(arrays[1])), rtol=1e-6)
    np.testing.assert_allclose(values[1], np.sum(arrays[1] ** 2), rtol=1e-6)  # no 1/2


def test_apply_penalty_to_a_tensor_and_to_collections(arrays):
    shared = [pytensor.shared(array) for array in arrays]
    expected_l2 = sum(np.sum(array ** 2) for array in arrays)
    np.testing.assert_allclose(evaluate(reg.apply_penalty(shared, reg.l2)), expected_l2,
                               rtol=1e-6)
    np.testing.assert_allclose(evaluate(reg.apply_penalty(tuple(shared), reg.l2)),
                               expected_l2, rtol=1e-6)
    np.testing.assert_allclose(evaluate(reg.apply_penalty(iter(shared), reg.l2)),
                               expected_l2, rtol=1e-6)
    assert reg.apply_penalty([], reg.l2) == 0

    # A single tensor is penalised whole, not row by row (PyTensor tensors iterate).
    largest = reg.apply_penalty(shared[0], lambda x, scale: scale * pt.max(x), scale=2.0)
    np.testing.assert_allclose(evaluate(largest), 2.0 * arrays[0].max(), rtol=1e-6)


# --- layer helpers --------------------------------------------------------------


@pytest.fixture
def network():
    """input(5) -> dense(4) -> dense(3) with random non-zero weights and biases."""
    rng = np.random.default_rng(6)
    input_layer = InputLayer((None, 5))
    hidden = DenseLayer(input_layer, num_units=4)
    output = DenseLayer(hidden, num_units=3)
    for layer in (hidden, output):
        for param in (layer.W, layer.b):
            shape = param.get_value().shape
            param.set_value(rng.standard_normal(shape).astype(param.dtype))
    return hidden, output


def squares(*params):
    return sum(np.sum(param.get_value().astype(np.float64) ** 2) for param in params)


def test_regularize_layer_params_uses_only_the_layers_own_weights(network):
    hidden, output = network
    np.testing.assert_allclose(evaluate(reg.regularize_layer_params(output, reg.l2)),
                               squares(output.W), rtol=1e-5)
    np.testing.assert_allclose(
        evaluate(reg.regularize_layer_params([hidden, output], reg.l2)),
        squares(hidden.W, output.W), rtol=1e-5)
    all_tags = reg.regularize_layer_params(output, reg.l2, tags={})
    np.testing.assert_allclose(evaluate(all_tags), squares(output.W, output.b), rtol=1e-5)


def test_regularize_layer_params_weighted(network):
    hidden, output = network
    penalty = reg.regularize_layer_params_weighted({hidden: 0.1, output: 0.5}, reg.l1)
    expected = (0.1 * np.sum(np.abs(hidden.W.get_value()))
                + 0.5 * np.sum(np.abs(output.W.get_value())))
    np.testing.assert_allclose(evaluate(penalty), expected, rtol=1e-5)


def test_regularize_network_params_is_train_fcn8_weight_decay(network):
    hidden, output = network
    np.testing.assert_allclose(evaluate(reg.regularize_network_params(output, reg.l2)),
                               squares(hidden.W, output.W), rtol=1e-5)
    trainable = reg.regularize_network_params(output, reg.l2, tags={"trainable": True})
    np.testing.assert_allclose(evaluate(trainable),
                               squares(hidden.W, hidden.b, output.W, output.b), rtol=1e-5)
    assert reg.regularize_network_params.__defaults__[0] == {"regularizable": True}
