"""Small networks with the tutorial builders' layer names, kinds and parameter layouts.

The weight loaders only look at layer names, parameter shapes and the kind of each layer
(convolution or transposed convolution, ``flip_filters``); these nets have all three of
``buildFCN8`` / ``buildFCN16`` / ``buildFCN32`` with a few channels instead of VGG16's
widths, so tests build them in milliseconds. ``fake_vgg_arrays`` makes distinct values
(``layer index * 100000 + position``) so that a value in the wrong place is caught.
"""

from collections import OrderedDict

import numpy as np

from fcn8_lasagne.layers import (
    Conv2DLayer,
    InputLayer,
    Pool2DLayer,
    TransposedConv2DLayer,
)
from fcn8_lasagne.nonlinearities import linear

#: Channels of the five conv blocks and fc6/fc7 (VGG16: 64, 128, 256, 512, 512, 4096).
TINY_WIDTHS = (2, 3, 4, 5, 6, 7)
CONV_NAMES = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
)  # fmt: skip
BLOCK_OF = {name: int(name[4]) - 1 for name in CONV_NAMES}


def tiny_tutorial_fcn(kind="fcn8", n_classes=3, nb_in_channels=3, widths=TINY_WIDTHS):
    """Parameter layout of the tutorial's FCN-8/16/32 with small widths."""
    net = OrderedDict()
    net["input"] = InputLayer((None, nb_in_channels, None, None))
    incoming = net["input"]
    for name in CONV_NAMES:
        pad = 100 if name == "conv1_1" else "same"
        net[name] = incoming = Conv2DLayer(incoming, widths[BLOCK_OF[name]], 3, pad=pad,
                                           flip_filters=False)
        if name in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"):
            pool = f"pool{name[4]}"
            net[pool] = incoming = Pool2DLayer(incoming, 2)
    net["fc6"] = Conv2DLayer(net["pool5"], widths[5], 7, flip_filters=False)
    net["fc7"] = Conv2DLayer(net["fc6"], widths[5], 1, flip_filters=False)
    net["score_fr"] = Conv2DLayer(net["fc7"], n_classes, 1, flip_filters=False)
    if kind == "fcn32":
        net["upsample"] = TransposedConv2DLayer(net["score_fr"], n_classes, 64, stride=32,
                                                nonlinearity=linear)
        return net
    net["score2"] = TransposedConv2DLayer(net["score_fr"], n_classes, 4, stride=2,
                                          nonlinearity=linear)
    net["score_pool4"] = Conv2DLayer(net["pool4"], n_classes, 1, pad="same")
    if kind == "fcn16":
        net["upsample"] = TransposedConv2DLayer(net["score2"], n_classes, 32, stride=16,
                                                nonlinearity=linear)
        return net
    net["score4"] = TransposedConv2DLayer(net["score2"], n_classes, 4, stride=2,
                                          nonlinearity=linear)
    net["score_pool3"] = Conv2DLayer(net["pool3"], n_classes, 1)
    net["upsample"] = TransposedConv2DLayer(net["score4"], n_classes, 16, stride=8,
                                            nonlinearity=linear)
    return net


def param_layers(net):
    """Names of the layers with parameters, in dictionary order."""
    return [name for name, layer in net.items() if getattr(layer, "W", None) is not None]


def snapshot(net):
    """Copies of every parameter value, by layer name."""
    return {
        name: [p.get_value().copy() for p in net[name].get_params()]
        for name in param_layers(net)
    }


def assert_unchanged(net, before):
    after = snapshot(net)
    assert after.keys() == before.keys()
    for name in before:
        for old, new in zip(before[name], after[name]):
            np.testing.assert_array_equal(old, new, err_msg=name)


def distinct(shape, layer_index, dtype=np.float32):
    """Values ``layer_index * 100000 + position``: unique per layer for tiny shapes."""
    count = int(np.prod(shape))
    values = layer_index * 100000 + np.arange(count, dtype=np.float64)
    return values.astype(dtype).reshape(shape)
