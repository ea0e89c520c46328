"""Dilated-ResNet FCNs: Gluon-CV's ``fcn_resnet50/101`` and torchvision's ``fcn_resnet50/101``.

``buildFCNResNet`` returns an ordered dict of layers as :func:`~fcn8_lasagne.models.buildFCN8`
does: the ResNet body of :mod:`.resnet` (V1s for ``variant='gluoncv'``, V1b for
``'torchvision'``), the FCN head on layer4 (3x3 conv in -> in/4 without bias, BN, ReLU,
Dropout(0.1), 1x1 conv with bias), the aux head on layer3 (1024 -> 256 -> classes), each
resized bilinearly **to the input size** (``out`` and ``aux``), and the ``probs`` softmax head
of buildFCN8 on ``out``. The one rule to know: head layer names follow the variant's weight
keys -- ``head.block.N`` / ``auxlayer.block.N`` (Gluon-CV) or ``classifier.N`` /
``aux_classifier.N`` (torchvision) -- and the two variants resize differently: Gluon-CV's
``BilinearResize2D`` aligns corners, torchvision's ``F.interpolate`` does not.

Ours, not in either original: the resize to the *input* size for Gluon-CV (its ``forward``
resizes to the crop size, 480, whatever the input) and ``skip=True`` (FCN-8s-style skip
fusion on an undilated body). See ``docs/fcn-resnet.md``.
"""

from collections import OrderedDict

from .. import init
from ..layers import (
    Conv2DLayer,
    Deconv2DLayer,
    DimshuffleLayer,
    DropoutLayer,
    ElemwiseSumLayer,
    NonlinearityLayer,
    ReshapeLayer,
)
from ..layers.resize import BilinearResizeLayer
from ..nonlinearities import linear, softmax
from .resnet import (_bn, _conv, _relu, build_resnet_v1b, build_resnet_v1s,
                     stage_output_names)

__all__ = ["buildFCNResNet", "FCN_RESNET_VARIANTS", "fcn_resnet_head_names",
           "fcn_resnet_output_layers"]

#: variant -> (body builder, main head prefix, aux head prefix, align_corners)
FCN_RESNET_VARIANTS = {
    "gluoncv": (build_resnet_v1s, "head.block", "auxlayer.block", True),
    "torchvision": (build_resnet_v1b, "classifier", "aux_classifier", False),
}

_BACKBONES = {"resnet50": 50, "resnet101": 101}
_CENTER = [None, None, "center", "center"]


def fcn_resnet_head_names(variant):
    """``(main head prefix, aux head prefix)`` of a variant, e.g. ``('classifier',
    'aux_classifier')``."""
    _, main, aux, _ = _variant(variant)
    return main, aux


def _variant(variant):
    if variant not in FCN_RESNET_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(FCN_RESNET_VARIANTS)}, "
                         f"got {variant!r}")
    return FCN_RESNET_VARIANTS[variant]


def _fcn_head(net, prefix, incoming, n_classes, dropout):
    """``_FCNHead`` / ``FCNHead``: 0 conv 3x3 (no bias), 1 BN, 2 ReLU, 3 Dropout, 4 conv 1x1."""
    channels = incoming.output_shape[1] // 4
    top = _conv(net, f"{prefix}.0", incoming, channels, 3, pad=1)
    top = _relu(net, f"{prefix}.2", _bn(net, f"{prefix}.1", top))
    net[f"{prefix}.3"] = DropoutLayer(top, p=dropout, name=f"{prefix}.3")
    return _conv(net, f"{prefix}.4", net[f"{prefix}.3"], n_classes, 1, bias=True)


def _skip_fusion(net, top, n_classes, stages):
    """FCN-8s on the ResNet: score c3 and c2 (1x1 convs), x2 deconvolutions, centre crops."""
    for source, name in ((stages["layer3"], "c3"), (stages["layer2"], "c2")):
        net[f"score_{name}"] = Conv2DLayer(net[source], n_classes, 1, nonlinearity=linear,
                                           flip_filters=False, name=f"score_{name}")
        net[f"up_to_{name}"] = Deconv2DLayer(top, n_classes, 4, stride=2, crop=1,
                                             W=init.Bilinear(), b=None, nonlinearity=linear,
                                             name=f"up_to_{name}")
        top = net[f"fuse_{name}"] = ElemwiseSumLayer(
            (net[f"up_to_{name}"], net[f"score_{name}"]), cropping=_CENTER,
            name=f"fuse_{name}")
    return top


def _probs_head(net, input_var, n_classes):
    net["final_dimshuffle"] = DimshuffleLayer(net["out"], (0, 2, 3, 1),
                                              name="final_dimshuffle")
    net["final_reshape"] = ReshapeLayer(net["final_dimshuffle"], (-1, n_classes),
                                        name="final_reshape")
    net["probs"] = NonlinearityLayer(net["final_reshape"], nonlinearity=softmax, name="probs")
    size = input_var.shape
    net["probs_reshape"] = ReshapeLayer(net["probs"], (size[0], size[2], size[3], n_classes),
                                        name="probs_reshape")
    net["probs_dimshuffle"] = DimshuffleLayer(net["probs_reshape"], (0, 3, 1, 2),
                                              name="probs_dimshuffle")


def buildFCNResNet(nb_in_channels, input_var, n_classes=21, backbone="resnet50",
                   variant="gluoncv", aux=True, dropout=0.1, skip=False, dilated=None,
                   align_corners=None):
    """Build a dilated-ResNet FCN (Gluon-CV's ``FCN`` or torchvision's ``fcn_resnet``).

    Parameters
    ----------
    nb_in_channels : int
        Image channels (3 for RGB; both originals expect ImageNet-normalised RGB in [0, 1]).
    input_var : pytensor TensorVariable or None
        4-D input (B, C, H, W); H and W may vary between calls.
    n_classes : int, default 21
    backbone : {'resnet50', 'resnet101'}, default 'resnet50'
    variant : {'gluoncv', 'torchvision'}, default 'gluoncv'
        ``'gluoncv'``: ResNet V1s body (deep stem), heads ``head.block.*`` /
        ``auxlayer.block.*``, corner-aligned resize. ``'torchvision'``: ResNet V1b body
        (7x7 stem), heads ``classifier.*`` / ``aux_classifier.*``, half-pixel resize.
    aux : bool, default True
        Add the aux head on layer3 (``aux``, resized to the input like ``out``).
    dropout : float, default 0.1
        Drop probability of the heads' ``.3`` layers.
    skip : bool, default False
        Ours: score layers on layer3 and layer2 fused with the x2-upsampled layer4 score
        (bilinear-initialised deconvolutions, centre crops as in FCN-8), on an undilated
        body (output stride 32); then the resize to the input.
    dilated : bool or None, default None
        Output stride 8 (True, the originals) or 32; ``None`` means ``not skip``.
        ``skip=True`` needs an undilated body.
    align_corners : bool or None, default None
        Override the variant's resize (``None``: True for Gluon-CV, False for torchvision).

    Returns
    -------
    OrderedDict of name -> Layer
        The body (see :mod:`.resnet`), the heads, ``out`` (and ``aux``) at the input size,
        ``final_dimshuffle``, ``final_reshape``, ``probs`` ((B H W, n_classes) softmax of
        ``out``), ``probs_reshape``, ``probs_dimshuffle``. ``probs`` does not depend on the
        aux head: take parameters from :func:`fcn_resnet_output_layers`.
    """
    builder, main_prefix, aux_prefix, variant_corners = _variant(variant)
    if backbone not in _BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(_BACKBONES)}, got {backbone!r}")
    if dilated is None:
        dilated = not skip
    if skip and dilated:
        raise ValueError("skip=True fuses stride-8/16/32 scores: it needs dilated=False")
    corners = variant_corners if align_corners is None else bool(align_corners)
    depth = _BACKBONES[backbone]
    net = builder(nb_in_channels, input_var, depth=depth, dilated=dilated,
                  net=OrderedDict())
    stages = stage_output_names(depth)
    top = _fcn_head(net, main_prefix, net[stages["layer4"]], n_classes, dropout)
    if skip:
        top = _skip_fusion(net, top, n_classes, stages)
    net["out"] = BilinearResizeLayer(top, size_from=net["input"], align_corners=corners,
                                     name="out")
    if aux:
        aux_top = _fcn_head(net, aux_prefix, net[stages["layer3"]], n_classes, dropout)
        net["aux"] = BilinearResizeLayer(aux_top, size_from=net["input"],
                                         align_corners=corners, name="aux")
    _probs_head(net, net["input"].input_var, n_classes)
    return net


def fcn_resnet_output_layers(net):
    """The layers whose parameters are the whole network: ``[probs]`` or ``[probs, aux]``."""
    return [net["probs"]] + ([net["aux"]] if "aux" in net else [])

