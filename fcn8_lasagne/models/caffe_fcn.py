"""FCN-8s / FCN-16s / FCN-32s with the Caffe reference semantics (fcn.berkeleyvision.org).

The tutorial's :func:`~fcn8_lasagne.models.buildFCN8` is *not* numerically the Caffe
network (see ``docs/fcn8-semantics.md`` section 3). These builders are, so the published
``.caffemodel`` / pytorch-fcn weights give the published predictions:

- ``conv1_1`` pads by 100, the other 3x3 convolutions by 1; all VGG convolutions are
  cross-correlations (``flip_filters=False``) followed by ReLU;
- pooling rounds up (``Pool2DLayer(2, ignore_border=False)``, whose output length
  ``ceil(in / 2)`` and partial end windows equal Caffe's ``Pooling`` and PyTorch's
  ``ceil_mode=True`` for 2x2 windows of stride 2);
- the score layers (``score_fr``, ``score_pool4``, ``score_pool3``) are linear;
- the upsampling deconvolutions have no bias and start as bilinear interpolation
  (:class:`fcn8_lasagne.init.Bilinear`);
- skip and output crops use Caffe's fixed offsets: FCN-8s 5 (``score_pool4c``),
  9 (``score_pool3c``) and 31 (``score``); FCN-16s 5 and 27; FCN-32s 19;
- ``at_once=True`` (FCN-8s only) inserts the fixed scalings of the "at-once" model,
  ``pool4 * 0.01`` and ``pool3 * 0.0001`` before the skip scores; the staged FCN-8s has
  none.

Layer names are Caffe's (``upscore2``, ``score_pool4c``, ``fuse_pool4``, ...), so weight
files map one to one. The output ``net['score']`` is ``(batch, n_classes, H, W)`` for an
input of ``H x W``; the networks expect BGR images in [0, 255] minus the mean
(104.00699, 116.66877, 122.67892).
"""

from collections import OrderedDict

from .. import init
from ..layers import (
    Conv2DLayer,
    DropoutLayer,
    ElemwiseSumLayer,
    InputLayer,
    Layer,
    MergeLayer,
    Pool2DLayer,
    TransposedConv2DLayer,
)
from ..nonlinearities import linear

__all__ = [
    "VGG16_WIDTHS",
    "OffsetCropLayer",
    "ConstantScaleLayer",
    "buildFCN8s_caffe",
    "buildFCN16s_caffe",
    "buildFCN32s_caffe",
]

#: Output channels of VGG16's five convolution blocks and of fc6 / fc7.
VGG16_WIDTHS = (64, 128, 256, 512, 512, 4096)

_BLOCK_DEPTHS = (2, 2, 3, 3, 3)


class OffsetCropLayer(MergeLayer):
    """Caffe's ``Crop`` layer on the spatial axes: cut the first input to the second's size.

    Output ``x[:, :, offset:offset + H_ref, offset:offset + W_ref]`` where ``x`` is the
    first input and ``(H_ref, W_ref)`` the spatial size of the second (the reference),
    which contributes only its shape.

    Parameters
    ----------
    incoming : Layer
        The layer to crop.
    reference : Layer
        The layer whose height and width the output takes.
    offset : int or (int, int)
        Rows and columns dropped at the top and left.
    """

    def __init__(self, incoming, reference, offset, **kwargs):
        super().__init__([incoming, reference], **kwargs)
        offset = (offset, offset) if isinstance(offset, int) else tuple(offset)
        if len(offset) != 2 or any(o < 0 for o in offset):
            raise ValueError(f"offset must be one or two non-negative ints, got {offset!r}")
        self.offset = offset

    def get_output_shape_for(self, input_shapes):
        shape, reference = input_shapes
        for axis, offset in zip((2, 3), self.offset):
            if shape[axis] is not None and reference[axis] is not None:
                if offset + reference[axis] > shape[axis]:
                    raise ValueError(
                        f"{type(self).__name__} {self.name!r}: cannot crop {reference[axis]} "
                        f"from {shape[axis]} at offset {offset} on axis {axis}"
                    )
        return tuple(shape[:2]) + tuple(reference[2:4])

    def get_output_for(self, inputs, **kwargs):
        input, reference = inputs
        (top, left) = self.offset
        return input[:, :, top:top + reference.shape[2], left:left + reference.shape[3]]


class ConstantScaleLayer(Layer):
    """Multiply the input by a fixed number (Caffe's ``Scale`` with ``lr_mult: 0``).

    Parameters
    ----------
    incoming : Layer
    scale : float
        Kept as the attribute ``scale``; no parameters are created.
    """

    def __init__(self, incoming, scale, **kwargs):
        super().__init__(incoming, **kwargs)
        self.scale = float(scale)

    def get_output_for(self, input, **kwargs):
        return input * self.scale


def _vgg16_body(net, nb_in_channels, input_var, widths):
    """``input`` to ``drop7``: VGG16 with conv1_1 padded by 100 and ceil pooling."""
    if len(widths) != len(VGG16_WIDTHS):
        raise ValueError(f"widths needs {len(VGG16_WIDTHS)} entries, got {widths!r}")
    net["input"] = InputLayer((None, nb_in_channels, None, None), input_var, name="input")
    incoming = net["input"]
    for block, (depth, width) in enumerate(zip(_BLOCK_DEPTHS, widths[:5]), start=1):
        for index in range(1, depth + 1):
            name = f"conv{block}_{index}"
            pad = 100 if name == "conv1_1" else 1
            net[name] = incoming = Conv2DLayer(incoming, width, 3, pad=pad,
                                               flip_filters=False, name=name)
        name = f"pool{block}"
        net[name] = incoming = Pool2DLayer(incoming, 2, ignore_border=False, name=name)
    net["fc6"] = Conv2DLayer(net["pool5"], widths[5], 7, pad=0, flip_filters=False,
                             name="fc6")
    net["drop6"] = DropoutLayer(net["fc6"], p=0.5, name="drop6")
    net["fc7"] = Conv2DLayer(net["drop6"], widths[5], 1, pad=0, flip_filters=False,
                             name="fc7")
    net["drop7"] = DropoutLayer(net["fc7"], p=0.5, name="drop7")
    return net


def _score(net, name, incoming, n_classes):
    net[name] = Conv2DLayer(incoming, n_classes, 1, pad=0, flip_filters=False,
                            nonlinearity=linear, name=name)
    return net[name]


def _upscore(net, name, incoming, n_classes, factor):
    net[name] = TransposedConv2DLayer(incoming, n_classes, 2 * factor, stride=factor,
                                      crop=0, W=init.Bilinear(), b=None, nonlinearity=linear,
                                      name=name)
    return net[name]


def _skip(net, pool, n_classes, scale):
    """``score_poolN`` (optionally on ``scale_poolN``) for the skip from ``poolN``."""
    incoming = net[pool]
    if scale is not None:
        net[f"scale_{pool}"] = incoming = ConstantScaleLayer(incoming, scale,
                                                             name=f"scale_{pool}")
    return _score(net, f"score_{pool}", incoming, n_classes)


def _fuse(net, name, upscored, score, crop_name, offset):
    net[crop_name] = OffsetCropLayer(score, upscored, offset, name=crop_name)
    net[name] = ElemwiseSumLayer([upscored, net[crop_name]], name=name)
    return net[name]


def buildFCN32s_caffe(nb_in_channels, input_var, n_classes=21, widths=VGG16_WIDTHS):
    """Caffe's FCN-32s: ``score_fr`` upsampled by a stride-32 deconvolution, cropped at 19.

    Parameters
    ----------
    nb_in_channels : int
        Input channels (3 for the published models).
    input_var : pytensor 4-D tensor or None
        Symbolic ``(batch, channels, H, W)`` input.
    n_classes : int
    widths : sequence of 6 ints
        Channels of the five VGG blocks and fc6/fc7; the default is VGG16's. Smaller
        values give a structurally identical, lighter network (for tests).

    Returns
    -------
    collections.OrderedDict
        Layer name to layer, ending with ``'score'``.
    """
    net = _vgg16_body(OrderedDict(), nb_in_channels, input_var, widths)
    score_fr = _score(net, "score_fr", net["drop7"], n_classes)
    upscore = _upscore(net, "upscore", score_fr, n_classes, 32)
    net["score"] = OffsetCropLayer(upscore, net["input"], 19, name="score")
    return net


def buildFCN16s_caffe(nb_in_channels, input_var, n_classes=21, widths=VGG16_WIDTHS):
    """Caffe's FCN-16s: the pool4 skip fused at stride 16, then a stride-16 deconvolution.

    Crops: ``score_pool4c`` at offset 5, ``score`` at 27. Parameters and return value as
    :func:`buildFCN32s_caffe`.
    """
    net = _vgg16_body(OrderedDict(), nb_in_channels, input_var, widths)
    score_fr = _score(net, "score_fr", net["drop7"], n_classes)
    upscore2 = _upscore(net, "upscore2", score_fr, n_classes, 2)
    score_pool4 = _skip(net, "pool4", n_classes, None)
    fuse_pool4 = _fuse(net, "fuse_pool4", upscore2, score_pool4, "score_pool4c", 5)
    upscore16 = _upscore(net, "upscore16", fuse_pool4, n_classes, 16)
    net["score"] = OffsetCropLayer(upscore16, net["input"], 27, name="score")
    return net


def buildFCN8s_caffe(nb_in_channels, input_var, n_classes=21, at_once=False,
                     widths=VGG16_WIDTHS):
    """Caffe's FCN-8s: pool4 and pool3 skips, then a stride-8 deconvolution.

    Crops: ``score_pool4c`` at offset 5, ``score_pool3c`` at 9, ``score`` at 31.

    Parameters
    ----------
    nb_in_channels, input_var, n_classes, widths
        As :func:`buildFCN32s_caffe`.
    at_once : bool
        Build the "at-once" FCN-8s (``voc-fcn8s-atonce``, pytorch-fcn ``FCN8sAtOnce``):
        ``pool4`` is multiplied by 0.01 (layer ``scale_pool4``) and ``pool3`` by 0.0001
        (``scale_pool3``) before their score layers. The staged FCN-8s (default) has no
        scaling.

    Returns
    -------
    collections.OrderedDict
        Layer name to layer, ending with ``'score'``.
    """
    net = _vgg16_body(OrderedDict(), nb_in_channels, input_var, widths)
    score_fr = _score(net, "score_fr", net["drop7"], n_classes)
    upscore2 = _upscore(net, "upscore2", score_fr, n_classes, 2)
    score_pool4 = _skip(net, "pool4", n_classes, 0.01 if at_once else None)
    fuse_pool4 = _fuse(net, "fuse_pool4", upscore2, score_pool4, "score_pool4c", 5)
    upscore_pool4 = _upscore(net, "upscore_pool4", fuse_pool4, n_classes, 2)
    score_pool3 = _skip(net, "pool3", n_classes, 0.0001 if at_once else None)
    fuse_pool3 = _fuse(net, "fuse_pool3", upscore_pool4, score_pool3, "score_pool3c", 9)
    upscore8 = _upscore(net, "upscore8", fuse_pool3, n_classes, 8)
    net["score"] = OffsetCropLayer(upscore8, net["input"], 31, name="score")
    return net
