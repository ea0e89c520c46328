"""``recompute_elemwise``: backward loops recompute forward elementwise values.

The values must not change at all (the same scalar operations on the same operands), and
the feature maps that a training graph keeps alive at once must get fewer; both are
measured on the compiled graphs, with the rewrite and without it.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.fg import FunctionGraph
from pytensor.scalar import mul as scalar_mul
from pytensor.tensor.elemwise import Elemwise

from fcn8_lasagne import compile as fcn8_compile
from fcn8_lasagne import nonlinearities
from fcn8_lasagne.layers import (BatchNormLayer, Conv2DLayer, InputLayer, NonlinearityLayer,
                                 get_all_params, get_output)
from fcn8_lasagne.ops.recompute import _is_feature_map, recompute_elemwise

MODE = fcn8_compile.mode_for_device("cpu")
WITHOUT = MODE.excluding("recompute_elemwise")


def _bn_relu_training(dtype):
    """Loss and gradients of conv -> batch norm -> rectify -> conv, as ResNet blocks are."""
    with pytensor.config.change_flags(floatX=dtype):
        net = InputLayer((2, 3, 12, 10))
        net = Conv2DLayer(net, 6, 3, pad=1, b=None, nonlinearity=None)
        net = BatchNormLayer(net)
        net = NonlinearityLayer(net, nonlinearities.rectify)
        net = Conv2DLayer(net, 5, 3, pad=1, b=None, nonlinearity=None)
        x = pt.tensor4("x", dtype=dtype)
        output = get_output(net, x)
        params = get_all_params(net, trainable=True)
        loss = (output ** 2).sum()
        return [x], [loss] + pytensor.grad(loss, params)


def _most_feature_maps_alive(function):
    """The most feature maps alive at once when the nodes run in the compiled order."""
    fgraph = function.maker.fgraph
    order = fgraph.toposort()
    position = {node: k for k, node in enumerate(order)}
    last = {}
    for node in order:
        for variable in node.outputs:
            if _is_feature_map(variable):
                readers = [position.get(client, len(order))
                           for client, _ in fgraph.clients[variable]]
                last[variable] = (position[node], max(readers, default=position[node]))
    return max(sum(start <= k <= end for start, end in last.values())
               for k in range(len(order)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_are_bitwise_those_without_the_rewrite(dtype):
    inputs, outputs = _bn_relu_training(dtype)
    ours = pytensor.function(inputs, outputs, mode=MODE)
    theirs = pytensor.function(inputs, outputs, mode=WITHOUT)
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 10)).astype(dtype)
    for got, expected in zip(ours(x), theirs(x)):
        np.testing.assert_array_equal(got, expected)


def test_batch_norm_and_rectifier_keep_two_feature_maps_for_the_backward_pass():
    """Without the rewrite the rectifier's gradient reads the normalised values and a
    second ``x - mean``, and the scale's gradient reads the first; with it the backward
    loops read the convolution's output, as PyTorch keeps it."""
    inputs, outputs = _bn_relu_training("float32")
    ours = pytensor.function(inputs, outputs, mode=MODE)
    theirs = pytensor.function(inputs, outputs, mode=WITHOUT)
    assert _most_feature_maps_alive(ours) < _most_feature_maps_alive(theirs)
    conv_output = [node.outputs[0] for node in ours.maker.fgraph.toposort()
                   if type(node.op).__name__ == "Conv2d"][0]
    readers = ours.maker.fgraph.clients[conv_output]
    # the forward's statistics and rectifier, and two backward loops
    assert len(readers) >= 4


def test_a_producer_is_fused_into_its_reader_and_unread_outputs_dropped():
    """``t = exp(x) * 2`` is read early by a sum and late by ``t * g`` where ``g`` depends
    on that sum: recomputing ``t`` there frees it after the sum; ``x`` (an input) is kept
    anyway."""
    x = pt.tensor3("x")
    t = pt.exp(x) * 2
    g = t.sum() * pt.tanh(x)
    out = t * g + 1
    ours = pytensor.function([x], out, mode=MODE)
    theirs = pytensor.function([x], out, mode=WITHOUT)
    value = np.random.default_rng(1).standard_normal((3, 4, 5)).astype("float32")
    np.testing.assert_array_equal(ours(value), theirs(value))
    assert _most_feature_maps_alive(ours) <= _most_feature_maps_alive(theirs)


def _late_reader_graph(t_is_output):
    """``t = exp(x)`` read by a sum and by a later loop that also reads the sum."""
    x = pt.tensor3("x")
    t = pt.exp(x)
    total = pt.specify_shape(t.sum(), ()).dimshuffle("x", "x", "x")
    late = Elemwise(scalar_mul)(t, total, pt.tanh(x))
    outputs = [t, late] if t_is_output else [late]
    fgraph = FunctionGraph([x], outputs, clone=False)
    return fgraph, t, late


@pytest.mark.parametrize("t_is_output", [False, True])
def test_only_values_that_are_not_graph_outputs_are_recomputed(t_is_output):
    fgraph, t, late = _late_reader_graph(t_is_output)
    recompute_elemwise.rewrite(fgraph)
    reader = fgraph.outputs[-1].owner
    assert (t in reader.inputs) == t_is_output
    if not t_is_output:  # the late loop computes exp(x) itself, from x
        assert [v.name for v in reader.inputs if v.owner is None] == ["x"]
        value = np.random.default_rng(2).standard_normal((3, 4, 5)).astype("float32")
        got = pytensor.function([fgraph.inputs[0]], fgraph.outputs[-1], mode=WITHOUT)(value)
        np.testing.assert_allclose(got, np.exp(value) * np.exp(value).sum() * np.tanh(value),
                                   rtol=1e-5)
