"""The tutorial's fully convolutional networks: ``buildFCN8`` and its siblings.

Each builder returns the tutorial's network as an ordered dict of named layers (or, with
``layer=[...]``, the list ``[net[name] for name in layer]`` as the original did). The
numerics follow the original exactly — ``pad=100`` on ``conv1_1``, floor max-pooling, ReLU on
every score convolution, Glorot-initialised trainable deconvolutions with biases, centre crops
and the ``input_tmp`` crop to the image — with the differences listed in
``docs/faithfulness.md`` (which layers are frozen, weight loading, layer names).

``load_weights=True`` reads the file with the plain array readers of
:mod:`fcn8_lasagne.files` (NumPy for the ``.npz``, SciPy for MatConvNet's ``.mat``) and sets
the values with the layer-level, validate-then-set
:func:`~fcn8_lasagne.layers.set_all_param_values`: this module never imports
:mod:`fcn8_lasagne.weights`, which sits above ``models`` (its converters build models).
"""

import math
import numbers
import os
from collections import OrderedDict

from .. import init
from ..files import matconvnet_to_fcn, read_matconvnet_params, read_npz_arrays
from ..layers import (
    Conv2DLayer,
    Deconv2DLayer,
    DimshuffleLayer,
    DropoutLayer,
    ElemwiseMergeLayer,
    ElemwiseSumLayer,
    InputLayer,
    NonlinearityLayer,
    Pool2DLayer,
    ReshapeLayer,
    get_all_layers,
    get_all_params,
    set_all_param_values,
)
from ..nonlinearities import linear, softmax

__all__ = ["buildFCN8", "buildFCN16", "buildFCN32", "freezeParameters", "VGG16_BLOCKS"]

#: (block, number of conv layers, filters) of the VGG16 body.
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))

_CENTER = [None, None, "center", "center"]


def freezeParameters(net, single=True):
    """Remove the ``trainable`` tag from parameters (the tutorial's ``model_helpers``).

    Parameters
    ----------
    net : Layer
        The top layer.
    single : bool, default True
        Only the top layer's own parameters (as the tutorial called it, which froze nothing
        since its top layer has none); ``False`` freezes every layer below ``net`` as well.
    """
    layers = get_all_layers(net)
    if single:
        layers = [layers[-1]]
    for layer in layers:
        for param in layer.get_params():
            layer.params[param].discard("trainable")


def _deconv_weights(deconv_init):
    if deconv_init == "glorot":
        return init.GlorotUniform()
    if deconv_init == "bilinear":
        return init.Bilinear()
    raise ValueError(f"deconv_init must be 'glorot' or 'bilinear', got {deconv_init!r}")


def _add_vgg16_body(net, nb_in_channels, input_var, n_classes, dropout):
    """input … pool5, fc6, fc7 (as convolutions) with their dropouts and score_fr."""
    net["input"] = InputLayer((None, nb_in_channels, None, None), input_var, name="input")
    incoming = net["input"]
    for block, n_convs, n_filters in VGG16_BLOCKS:
        for index in range(1, n_convs + 1):
            name = f"conv{block}_{index}"
            pad = 100 if name == "conv1_1" else "same"
            net[name] = Conv2DLayer(incoming, n_filters, 3, pad=pad, flip_filters=False,
                                    name=name)
            incoming = net[name]
        net[f"pool{block}"] = Pool2DLayer(incoming, 2, name=f"pool{block}")
        incoming = net[f"pool{block}"]
    net["fc6"] = Conv2DLayer(net["pool5"], 4096, 7, pad="valid", flip_filters=False,
                             name="fc6")
    net["fc6_dropout"] = DropoutLayer(net["fc6"], p=dropout, name="fc6_dropout")
    net["fc7"] = Conv2DLayer(net["fc6_dropout"], 4096, 1, pad="valid", flip_filters=False,
                             name="fc7")
    net["fc7_dropout"] = DropoutLayer(net["fc7"], p=dropout, name="fc7_dropout")
    # no nonlinearity given: ReLU, as in the tutorial
    net["score_fr"] = Conv2DLayer(net["fc7_dropout"], n_classes, 1, pad="valid",
                                  flip_filters=False, name="score_fr")


def _deconv(net, name, incoming, n_classes, filter_size, stride, deconv_init):
    net[name] = Deconv2DLayer(incoming, n_classes, filter_size, stride=stride, crop="valid",
                              W=_deconv_weights(deconv_init), nonlinearity=linear, name=name)
    return net[name]


def _add_output_head(net, input_var, n_classes):
    """Crop ``upsample`` to the image and add dimshuffle → reshape → softmax → back to 4-D."""
    upsample_channels = net["upsample"].output_shape[1]
    # the image itself, declared with n_classes channels: only its H and W are used
    net["input_tmp"] = InputLayer((None, upsample_channels, None, None), input_var,
                                  name="input_tmp")
    net["score"] = ElemwiseMergeLayer((net["input_tmp"], net["upsample"]),
                                      merge_function=lambda input, deconv: deconv,
                                      cropping=_CENTER, name="score")
    net["final_dimshuffle"] = DimshuffleLayer(net["score"], (0, 2, 3, 1),
                                              name="final_dimshuffle")
    # The tutorial wrote (T.prod(laySize[0:3]), laySize[3]) with laySize the symbolic shape
    # of final_dimshuffle; -1 gives the same shape and keeps it static for JAX.
    net["final_reshape"] = ReshapeLayer(net["final_dimshuffle"], (-1, n_classes),
                                        name="final_reshape")
    net["probs"] = NonlinearityLayer(net["final_reshape"], nonlinearity=softmax, name="probs")
    # The tutorial's laySize[0:3] is (B, H, W) of the cropped score, which is the image's
    # (B, H, W) since `score` crops to it; taking them from input_var keeps them static for JAX.
    image_size = input_var.shape
    net["probs_reshape"] = ReshapeLayer(net["probs"],
                                        (image_size[0], image_size[2], image_size[3], n_classes),
                                        name="probs_reshape")
    net["probs_dimshuffle"] = DimshuffleLayer(net["probs_reshape"], (0, 3, 1, 2),
                                              name="probs_dimshuffle")


def _set_by_layer_name(net, values, source):
    """Set ``{layer name: [W, b or None]}`` (our layouts) through ``set_all_param_values``:
    every value checked before any is set; a missing bias becomes zeros."""
    unknown = [name for name in values if getattr(net.get(name), "W", None) is None]
    if unknown:
        with_weights = [name for name, layer in net.items() if getattr(layer, "W", None)]
        raise ValueError(f"{source}: layer(s) {unknown} are not layers with weights of the "
                         f"network ({', '.join(with_weights)})")
    params = get_all_params(net["probs"])
    new = {}
    for name, (weight, bias) in values.items():
        layer = net[name]
        new[layer.W] = weight
        if getattr(layer, "b", None) is not None:
            new[layer.b] = (bias if bias is not None
                            else 0 * layer.b.get_value(borrow=True))
    try:
        set_all_param_values(net["probs"], [new[p] if p in new else p.get_value(borrow=True)
                                            for p in params])
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _read_weights(path_weights, pascal):
    """The file's arrays, read and checked (finite, floating point) before the net is built:
    ``{layer: [W, b]}`` for MatConvNet, else the list of ``arr_i``."""
    source = os.fspath(path_weights)
    if pascal:
        return matconvnet_to_fcn(read_matconvnet_params(source), source)
    return read_npz_arrays(source)


def _load(net, values, path_weights, pascal):
    source = os.fspath(path_weights)
    if pascal:
        for name in values:
            if getattr(net.get(name), "flip_filters", False):
                raise ValueError(f"{source}: layer {name!r} computes a convolution "
                                 "(flip_filters=True); MatConvNet's are cross-correlations")
        _set_by_layer_name(net, values, source)
        return
    try:
        set_all_param_values(net["probs"], values)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _finish(net, path_weights, values, trainable, layer, pascal, temperature):
    if values is not None:
        _load(net, values, path_weights, pascal)
        if temperature != 1.0:
            upsample = net["upsample"]
            upsample.W.set_value(upsample.W.get_value() / temperature)
            upsample.b.set_value(upsample.b.get_value() / temperature)
    if not trainable:
        freezeParameters(net["probs"], single=False)
    if layer is None:
        return net
    missing = [name for name in layer if name not in net]
    if missing:
        raise KeyError(f"unknown layer name(s) {missing}; the network has {list(net)}")
    return [net[name] for name in layer]


_BUILDER_PARAMETERS = """
    Parameters
    ----------
    nb_in_channels : int
        Image channels (3 for RGB).
    input_var : pytensor TensorVariable
        4-D input (B, C, H, W); H and W may vary between calls.
    path_weights : str, optional
        Weights to load when ``load_weights`` is true: a Lasagne ``.npz`` (``arr_i``, the
        order of ``get_all_params``), or with ``pascal=True`` a MatConvNet FCN ``.mat``.
    n_classes : int, default 21
    load_weights : bool, default False
        Load ``path_weights`` (the tutorial's last version only applied ``temperature``
        here), then divide the ``upsample`` weights and bias by ``temperature``.
    void_labels : list, default []
        Unused, kept for the tutorial's signature.
    trainable : bool, default False
        ``False`` removes the ``trainable`` tag from every parameter (the tutorial meant to
        but froze nothing; pass ``True`` to train, as ``train_fcn8.py`` did).
    layer : list of str or None, default None
        ``None`` returns the whole ordered dict; a list returns ``[net[n] for n in layer]``
        as the tutorial did (its default was ``['probs_dimshuffle']``).
    pascal : bool, default False
        ``path_weights`` is a MatConvNet DagNN file.
    temperature : float, default 1.0
    dropout : float, default 0.5
        Drop probability of ``fc6_dropout`` and ``fc7_dropout``.
    deconv_init : {'glorot', 'bilinear'}, default 'glorot'
        Initialisation of the deconvolutions: the tutorial's Glorot uniform, or bilinear
        upsampling kernels (the FCN paper's choice; not in the tutorial).

    Returns
    -------
    OrderedDict of name → Layer, or list of Layer
"""


def _build(stride, nb_in_channels, input_var, path_weights, n_classes, load_weights,
           trainable, layer, pascal, temperature, dropout, deconv_init):
    """FCN-``stride``: the VGG body, the skips the stride calls for, the output head."""
    if load_weights:  # checked before the 134M parameters are made
        if path_weights is None:
            raise ValueError("load_weights=True needs path_weights (a Lasagne .npz file, or "
                             "a MatConvNet .mat file with pascal=True)")
        if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                or not math.isfinite(temperature) or temperature <= 0):
            raise ValueError(f"temperature must be a finite number > 0 (the upsample "
                             f"weights are divided by it), got {temperature!r}")
    values = _read_weights(path_weights, pascal) if load_weights else None
    net = OrderedDict()
    _add_vgg16_body(net, nb_in_channels, input_var, n_classes, dropout)
    top = net["score_fr"]
    if stride <= 16:
        _deconv(net, "score2", top, n_classes, 4, 2, deconv_init)
        net["score_pool4"] = Conv2DLayer(net["pool4"], n_classes, 1, pad="same",
                                         name="score_pool4")
        top = net["score_fused"] = ElemwiseSumLayer((net["score2"], net["score_pool4"]),
                                                    cropping=_CENTER, name="score_fused")
    if stride <= 8:
        _deconv(net, "score4", top, n_classes, 4, 2, deconv_init)
        net["score_pool3"] = Conv2DLayer(net["pool3"], n_classes, 1, pad="valid",
                                         name="score_pool3")
        top = net["score_final"] = ElemwiseSumLayer((net["score4"], net["score_pool3"]),
                                                    cropping=_CENTER, name="score_final")
    _deconv(net, "upsample", top, n_classes, 2 * stride, stride, deconv_init)
    # with input_var=None the input layer made its own variable: the head reads that one
    _add_output_head(net, net["input"].input_var, n_classes)
    return _finish(net, path_weights, values, trainable, layer, pascal, temperature)


def buildFCN8(nb_in_channels, input_var, path_weights=None, n_classes=21, load_weights=False,
              void_labels=[], trainable=False, layer=None, pascal=False, temperature=1.0,
              dropout=0.5, deconv_init="glorot"):
    return _build(8, nb_in_channels, input_var, path_weights, n_classes, load_weights,
                  trainable, layer, pascal, temperature, dropout, deconv_init)


def buildFCN16(nb_in_channels, input_var, path_weights=None, n_classes=21, load_weights=False,
               void_labels=[], trainable=False, layer=None, pascal=False, temperature=1.0,
               dropout=0.5, deconv_init="glorot"):
    return _build(16, nb_in_channels, input_var, path_weights, n_classes, load_weights,
                  trainable, layer, pascal, temperature, dropout, deconv_init)


def buildFCN32(nb_in_channels, input_var, path_weights=None, n_classes=21, load_weights=False,
               void_labels=[], trainable=False, layer=None, pascal=False, temperature=1.0,
               dropout=0.5, deconv_init="glorot"):
    return _build(32, nb_in_channels, input_var, path_weights, n_classes, load_weights,
                  trainable, layer, pascal, temperature, dropout, deconv_init)


buildFCN8.__doc__ = """Build the tutorial's FCN-8: VGG16 with skips from pool4 and pool3, ×8 upsampling.
""" + _BUILDER_PARAMETERS
buildFCN16.__doc__ = """Build FCN-16 as the tutorial describes it: score_fr ×2 fused with score_pool4,
then a stride-16 deconvolution (kernel 32).
""" + _BUILDER_PARAMETERS
buildFCN32.__doc__ = """Build FCN-32 as the tutorial describes it: score_fr upsampled by one stride-32
deconvolution (kernel 64).
""" + _BUILDER_PARAMETERS
