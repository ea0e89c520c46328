"""The U-Net of the tutorial series (``code/unet/Unet_lasagne_recipes.py``, by F. Isensee).

``build_UNet`` returns the tutorial's ordered dict of layers. Every 3x3 convolution is a
``batch_norm``-wrapped :class:`~fcn8_lasagne.layers.Conv2DLayer` (He-normal weights with the
ReLU gain, no bias: the :class:`~fcn8_lasagne.layers.BatchNormLayer` replaces it, the
nonlinearity follows it); four 2x2 max-pools; a 16x-base bottleneck; four
``batch_norm(Deconv2DLayer(..., 2, stride=2, crop='valid'))`` up-samplings, each concatenated
with the centre crop of the matching contracting output; a 1x1 output convolution and the
``dimshuffle → reshape → dimshuffle → softmax`` head keyed ``'output_flattened'``, whose rows
are the pixels of the batch in ``(batch, row, column)`` order.

The one rule a reader must know: with ``pad='same'`` the output has the input's size only
when the height and width are multiples of 16; otherwise the pools floor, the up-sampled
maps are smaller than the contracting ones, and the concatenations centre-crop the latter
(see ``docs/sibling-models.md``).
"""

from collections import OrderedDict

from .. import init
from ..layers import (
    ConcatLayer,
    Conv2DLayer,
    Deconv2DLayer,
    DimshuffleLayer,
    DropoutLayer,
    InputLayer,
    NonlinearityLayer,
    Pool2DLayer,
    ReshapeLayer,
    batch_norm,
)
from ..nonlinearities import elu, softmax

__all__ = ["build_UNet", "UNET_LAYERS"]

#: The keys of ``build_UNet``'s dict, in order.
UNET_LAYERS = (
    "input",
    "contr_1_1", "contr_1_2", "pool1",
    "contr_2_1", "contr_2_2", "pool2",
    "contr_3_1", "contr_3_2", "pool3",
    "contr_4_1", "contr_4_2", "pool4",
    "encode_1", "encode_2",
    "upscale1", "concat1", "expand_1_1", "expand_1_2",
    "upscale2", "concat2", "expand_2_1", "expand_2_2",
    "upscale3", "concat3", "expand_3_1", "expand_3_2",
    "upscale4", "concat4", "expand_4_1", "expand_4_2",
    "output_segmentation", "dimshuffle", "reshapeSeg", "dimshuffle2", "output_flattened",
)

_CENTER = (None, None, "center", "center")


def _conv(incoming, n_filters, nonlinearity, pad, name):
    return batch_norm(Conv2DLayer(incoming, n_filters, 3, nonlinearity=nonlinearity, pad=pad,
                                  W=init.HeNormal(gain="relu"), name=name))


def build_UNet(n_input_channels=1, BATCH_SIZE=None, num_output_classes=2, pad="same",
               nonlinearity=elu, input_dim=(None, None), base_n_filters=64, do_dropout=False):
    """The tutorial's U-Net.

    Parameters
    ----------
    n_input_channels : int, default 1
    BATCH_SIZE : int or None, default None
        The batch size the input layer declares (None: any).
    num_output_classes : int, default 2
    pad : 'same', 'valid', int, ..., default 'same'
        Padding of every 3x3 convolution.
    nonlinearity : callable, default :func:`~fcn8_lasagne.nonlinearities.elu`
        Applied after each batch normalisation (also after the up-samplings).
    input_dim : (int or None, int or None), default (None, None)
        Height and width the input layer declares.
    base_n_filters : int, default 64
        Filters of the first block; the blocks below have 2, 4, 8 and 16 times as many.
    do_dropout : bool, default False
        A ``DropoutLayer(p=0.4)`` between ``pool4`` and ``encode_1`` (not a key of the dict,
        as in the original).

    Returns
    -------
    OrderedDict
        Name → layer, keys :data:`UNET_LAYERS`. A ``batch_norm``-wrapped entry is the
        :class:`~fcn8_lasagne.layers.NonlinearityLayer` that ends it (named
        ``<key>_bn_nonlin``); ``'output_flattened'`` gives ``(pixels, num_output_classes)``
        softmax probabilities.
    """
    net = OrderedDict()
    net["input"] = InputLayer((BATCH_SIZE, n_input_channels, input_dim[0], input_dim[1]),
                              name="input")
    incoming = net["input"]
    for block in range(1, 5):
        n_filters = base_n_filters * 2 ** (block - 1)
        for index in (1, 2):
            name = f"contr_{block}_{index}"
            net[name] = incoming = _conv(incoming, n_filters, nonlinearity, pad, name)
        net[f"pool{block}"] = incoming = Pool2DLayer(incoming, 2, name=f"pool{block}")

    # where the paper puts its dropout is not said; the tutorial drops pool4's output
    if do_dropout:
        incoming = DropoutLayer(incoming, p=0.4, name="dropout")
    net["encode_1"] = incoming = _conv(incoming, base_n_filters * 16, nonlinearity, pad,
                                       "encode_1")
    net["encode_2"] = incoming = _conv(incoming, base_n_filters * 16, nonlinearity, pad,
                                       "encode_2")

    for level in range(1, 5):
        up_filters = base_n_filters * 2 ** (5 - level)  # 16x, 8x, 4x, 2x the base
        contracting = net[f"contr_{5 - level}_2"]
        name = f"upscale{level}"
        net[name] = batch_norm(Deconv2DLayer(incoming, up_filters, 2, 2, crop="valid",
                                             nonlinearity=nonlinearity,
                                             W=init.HeNormal(gain="relu"), name=name))
        net[f"concat{level}"] = incoming = ConcatLayer([net[name], contracting],
                                                       cropping=_CENTER, name=f"concat{level}")
        for index in (1, 2):
            name = f"expand_{level}_{index}"
            net[name] = incoming = _conv(incoming, up_filters // 2, nonlinearity, pad, name)

    net["output_segmentation"] = Conv2DLayer(incoming, num_output_classes, 1,
                                             nonlinearity=None, name="output_segmentation")
    net["dimshuffle"] = DimshuffleLayer(net["output_segmentation"], (1, 0, 2, 3),
                                        name="dimshuffle")
    net["reshapeSeg"] = ReshapeLayer(net["dimshuffle"], (num_output_classes, -1),
                                     name="reshapeSeg")
    net["dimshuffle2"] = DimshuffleLayer(net["reshapeSeg"], (1, 0), name="dimshuffle2")
    net["output_flattened"] = NonlinearityLayer(net["dimshuffle2"], nonlinearity=softmax,
                                                name="output_flattened")
    return net
