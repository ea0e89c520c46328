"""ResNet V1b / V1s bodies (Gluon-CV's ``ResNetV1b``, torchvision's ResNet "V1.5").

Both put the stride of a bottleneck on its 3x3 convolution (``BottleneckV1b``, expansion 4,
no convolution biases). V1b has torchvision's stem (one 7x7/2 convolution, 64 channels); V1s
Gluon-CV's deep stem (three 3x3 convolutions, 64/64/128, the first with stride 2). With
``dilated=True`` layer3 and layer4 keep stride 1 and dilate by 2 and 4 (their first blocks by
1 and 2), for an output stride of 8. The one rule to know: **layer names are the original
module paths** -- ``conv1`` (V1b) or ``conv1.0`` ... ``conv1.6`` (V1s), ``bn1``,
``layer3.1.conv2``, ``layer1.0.downsample.0`` -- so Gluon-CV's ``.params`` keys are
``<layer>.<param>`` and torchvision's ``backbone.<layer>.<param>``; ReLUs and the residual
sums get names of their own (``layer1.0.relu1``, ``layer1.0.add``, ``layer1.0.relu3``).

Batch normalisation is Lasagne's :class:`~fcn8_lasagne.layers.BatchNormLayer` with
``epsilon=1e-5`` and ``alpha=0.1`` (torch momentum 0.1, MXNet momentum 0.9); it keeps a
running average of ``inv_std`` where both frameworks average the variance (see
``docs/fcn-resnet.md``).
"""

from collections import OrderedDict

from .. import nonlinearities
from ..layers import (
    BatchNormLayer,
    Conv2DLayer,
    ElemwiseSumLayer,
    InputLayer,
    NonlinearityLayer,
    PaddedDilatedConv2DLayer,
    Pool2DLayer,
)

__all__ = ["RESNET_DEPTHS", "build_resnet_v1b", "build_resnet_v1s", "stage_output_names"]

#: Bottleneck blocks per stage.
RESNET_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

#: Batch normalisation settings of both frameworks, in Lasagne's terms.
BN_EPSILON = 1e-5
BN_ALPHA = 0.1


def _conv(net, name, incoming, num_filters, filter_size, stride=1, pad=0, dilation=1,
          bias=False):
    """Cross-correlation (PyTorch / MXNet kernels), linear; a bias only if asked."""
    kwargs = dict(stride=stride, pad=pad, nonlinearity=None, flip_filters=False, name=name)
    if not bias:
        kwargs["b"] = None
    if dilation == 1:
        net[name] = Conv2DLayer(incoming, num_filters, filter_size, **kwargs)
    else:
        net[name] = PaddedDilatedConv2DLayer(incoming, num_filters, filter_size,
                                       filter_dilation=dilation, **kwargs)
    return net[name]


def _bn(net, name, incoming):
    net[name] = BatchNormLayer(incoming, epsilon=BN_EPSILON, alpha=BN_ALPHA, name=name)
    return net[name]


def _relu(net, name, incoming):
    net[name] = NonlinearityLayer(incoming, nonlinearities.rectify, name=name)
    return net[name]


def _bottleneck(net, prefix, incoming, planes, stride, dilation, downsample):
    """BottleneckV1b: 1x1 -> 3x3 (stride, dilation) -> 1x1 (4 planes), + residual, ReLU."""
    top = _conv(net, f"{prefix}.conv1", incoming, planes, 1)
    top = _relu(net, f"{prefix}.relu1", _bn(net, f"{prefix}.bn1", top))
    top = _conv(net, f"{prefix}.conv2", top, planes, 3, stride=stride, pad=dilation,
                dilation=dilation)
    top = _relu(net, f"{prefix}.relu2", _bn(net, f"{prefix}.bn2", top))
    top = _bn(net, f"{prefix}.bn3", _conv(net, f"{prefix}.conv3", top, 4 * planes, 1))
    residual = incoming
    if downsample:
        residual = _conv(net, f"{prefix}.downsample.0", incoming, 4 * planes, 1,
                         stride=stride)
        residual = _bn(net, f"{prefix}.downsample.1", residual)
    net[f"{prefix}.add"] = ElemwiseSumLayer((top, residual), name=f"{prefix}.add")
    return _relu(net, f"{prefix}.relu3", net[f"{prefix}.add"])


def _stages(net, incoming, in_channels, depth, dilated):
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(RESNET_DEPTHS)}, got {depth!r}")
    # (planes, stride, dilation) per stage; a dilated stage's first block uses half
    plan = [(64, 1, 1), (128, 2, 1), (256, 2, 1), (512, 2, 1)]
    if dilated:
        plan[2], plan[3] = (256, 1, 2), (512, 1, 4)
    top = incoming
    channels = in_channels
    for stage, ((planes, stride, dilation), blocks) in enumerate(
            zip(plan, RESNET_DEPTHS[depth]), start=1):
        for block in range(blocks):
            first = block == 0
            block_dilation = (dilation // 2 if dilation > 1 else 1) if first else dilation
            top = _bottleneck(net, f"layer{stage}.{block}", top, planes,
                              stride if first else 1, block_dilation,
                              downsample=first and (stride != 1 or channels != 4 * planes))
            channels = 4 * planes
    return net


def stage_output_names(depth):
    """Names of the layers that end the stem and each stage: ``{'stem': 'maxpool',
    'layer1': 'layer1.2.relu3', ...}`` (``c1`` ... ``c4`` of Gluon-CV's ``base_forward``)."""
    names = {"stem": "maxpool"}
    for stage, blocks in enumerate(RESNET_DEPTHS[depth], start=1):
        names[f"layer{stage}"] = f"layer{stage}.{blocks - 1}.relu3"
    return names


def _input(net, nb_in_channels, input_var):
    net["input"] = InputLayer((None, nb_in_channels, None, None), input_var, name="input")
    return net["input"]


def _finish_stem(net, top):
    top = _relu(net, "relu", _bn(net, "bn1", top))
    net["maxpool"] = Pool2DLayer(top, 3, stride=2, pad=1, mode="max", name="maxpool")
    return net["maxpool"]


def build_resnet_v1b(nb_in_channels, input_var, depth=50, dilated=True, net=None):
    """ResNet V1b body (torchvision's ResNet "V1.5"): 7x7/2 stem, bottleneck stages.

    Parameters
    ----------
    nb_in_channels : int
        Image channels (3 for RGB).
    input_var : pytensor TensorVariable or None
        4-D input (B, C, H, W); H and W may vary between calls.
    depth : {50, 101}, default 50
    dilated : bool, default True
        Output stride 8 (layer3 dilation 2, layer4 dilation 4) instead of 32.
    net : OrderedDict, optional
        Layers are added to it (default: a new one).

    Returns
    -------
    OrderedDict of name -> Layer
        ``input``, ``conv1``, ``bn1``, ``relu``, ``maxpool``, then ``layer1.0.conv1`` ...
        ``layer4.2.relu3`` (see :func:`stage_output_names`).
    """
    net = OrderedDict() if net is None else net
    top = _input(net, nb_in_channels, input_var)
    top = _conv(net, "conv1", top, 64, 7, stride=2, pad=3)
    top = _finish_stem(net, top)
    return _stages(net, top, 64, depth, dilated)


def build_resnet_v1s(nb_in_channels, input_var, depth=50, dilated=True, net=None,
                     stem_width=64):
    """ResNet V1s body (Gluon-CV's ``resnet50_v1s`` / ``resnet101_v1s``): deep stem.

    The stem is ``conv1.0`` (3x3/2, ``stem_width``), ``conv1.1`` BN, ``conv1.2`` ReLU,
    ``conv1.3`` (3x3), ``conv1.4`` BN, ``conv1.5`` ReLU, ``conv1.6`` (3x3, 2 ``stem_width``),
    then ``bn1``, ``relu`` and ``maxpool``; so ``layer1.0`` has a 128 -> 256 downsample.
    Parameters as :func:`build_resnet_v1b`, plus ``stem_width`` (default 64).
    """
    net = OrderedDict() if net is None else net
    top = _input(net, nb_in_channels, input_var)
    top = _conv(net, "conv1.0", top, stem_width, 3, stride=2, pad=1)
    top = _relu(net, "conv1.2", _bn(net, "conv1.1", top))
    top = _conv(net, "conv1.3", top, stem_width, 3, pad=1)
    top = _relu(net, "conv1.5", _bn(net, "conv1.4", top))
    top = _conv(net, "conv1.6", top, 2 * stem_width, 3, pad=1)
    top = _finish_stem(net, top)
    return _stages(net, top, 2 * stem_width, depth, dilated)
