"""The 1-D fully convolutional network of the tutorial series (``code/cnn_1D_segm/fcn1D.py``).

It segments cortical-layer intensity profiles: ``(batch, channels, 200)`` inputs, ``depth``
blocks of ``n_filters`` 'same'-padded 1-D convolutions of length ``filter_size`` with batch
normalisation and ReLU, a ``last_filter_size`` convolution to ``n_classes`` maps, and a
per-sample softmax. ``build_model`` returns ``([net['last_layer']], net)``, as the original.

The one rule a reader must know: ``final_conv`` keeps :class:`~fcn8_lasagne.layers.Conv1DLayer`'s
default ReLU, as in the original (its scores are clipped at 0 before the softmax).
"""

from ..layers import (
    BatchNormLayer,
    Conv1DLayer,
    DimshuffleLayer,
    InputLayer,
    NonlinearityLayer,
    ReshapeLayer,
)
from ..nonlinearities import rectify, softmax

__all__ = ["build_model", "conv_bn_relu", "bn_relu_conv", "PROFILE_LENGTH"]

#: The length of a profile, fixed by the original's input layer.
PROFILE_LENGTH = 200


def conv_bn_relu(net, incoming_layer, depth, num_filters, filter_size, pad="same"):
    """Add ``conv<depth>`` (no nonlinearity, with bias) → ``bn<depth>`` → ``relu<depth>``.

    Parameters
    ----------
    net : dict
        Name → layer; modified in place.
    incoming_layer : str
        The key of the block's input.
    depth : int
        The block's number, the suffix of its keys.
    num_filters, filter_size : int
    pad : default 'same'

    Returns
    -------
    str
        The key of the block's output, ``'relu<depth>'``.
    """
    net[f"conv{depth}"] = Conv1DLayer(net[incoming_layer], num_filters=num_filters,
                                      filter_size=filter_size, pad=pad, nonlinearity=None,
                                      name=f"conv{depth}")
    net[f"bn{depth}"] = BatchNormLayer(net[f"conv{depth}"], name=f"bn{depth}")
    net[f"relu{depth}"] = NonlinearityLayer(net[f"bn{depth}"], nonlinearity=rectify,
                                            name=f"relu{depth}")
    return f"relu{depth}"


def bn_relu_conv(net, incoming_layer, depth, num_filters, filter_size, pad="same"):
    """Add ``bn<depth>`` → ``relu<depth>`` → ``conv<depth>`` (no nonlinearity, with bias).

    Parameters and return value as :func:`conv_bn_relu`; the output key is ``'conv<depth>'``.
    """
    net[f"bn{depth}"] = BatchNormLayer(net[incoming_layer], name=f"bn{depth}")
    net[f"relu{depth}"] = NonlinearityLayer(net[f"bn{depth}"], nonlinearity=rectify,
                                            name=f"relu{depth}")
    net[f"conv{depth}"] = Conv1DLayer(net[f"relu{depth}"], num_filters=num_filters,
                                      filter_size=filter_size, pad=pad, nonlinearity=None,
                                      name=f"conv{depth}")
    return f"conv{depth}"


_BLOCKS = {"bn_relu_conv": bn_relu_conv, "conv_bn_relu": conv_bn_relu}


def build_model(input_var, n_classes=6, nb_in_channels=2, filter_size=25, n_filters=64,
                depth=8, last_filter_size=1, block="bn_relu_conv", out_nonlin=softmax):
    """The tutorial's 1-D FCN.

    Parameters
    ----------
    input_var : pytensor tensor3 or None
        ``(n_samples, nb_in_channels, 200)``; None makes a new variable.
    n_classes : int, default 6
        ``train_fcn1D.py`` passes 7 (six layers and the padding class).
    nb_in_channels : int, default 2
    filter_size : int, default 25
        Odd (``'same'`` padding).
    n_filters : int, default 64
    depth : int, default 8
        Number of blocks.
    last_filter_size : int, default 1
        Odd; the length of ``final_conv``'s filters.
    block : {'bn_relu_conv', 'conv_bn_relu'}, default 'bn_relu_conv'
    out_nonlin : callable, default softmax

    Returns
    -------
    [Layer], dict
        ``[net['last_layer']]`` (``(n_samples * length, n_classes)``, rows in ``(sample,
        position)`` order) and the dict of every layer: ``input``, the blocks' ``bn<d>``,
        ``relu<d>``, ``conv<d>``, then ``final_conv``, ``final_dimshuffle``,
        ``final_reshape``, ``last_layer``, ``probs_reshape`` and ``probs_dimshuffle``
        (``(n_samples, n_classes, length)``).
    """
    try:
        add_block = _BLOCKS[block]
    except (KeyError, TypeError):
        # the original skipped the blocks silently for an unknown name
        raise ValueError(
            f"unknown block {block!r}: expected 'bn_relu_conv' or 'conv_bn_relu'") from None
    net = {}
    net["input"] = InputLayer((None, nb_in_channels, PROFILE_LENGTH), input_var, name="input")
    incoming = "input"
    for d in range(depth):
        incoming = add_block(net, incoming, depth=d, num_filters=n_filters,
                             filter_size=filter_size)
    # no nonlinearity given: Conv1DLayer's default ReLU, as in the original
    net["final_conv"] = Conv1DLayer(net[incoming], num_filters=n_classes,
                                    filter_size=last_filter_size, pad="same",
                                    name="final_conv")
    net["final_dimshuffle"] = DimshuffleLayer(net["final_conv"], (0, 2, 1),
                                              name="final_dimshuffle")
    # The original took (prod(shape[0:2]), shape[2]) of get_output(final_dimshuffle); -1
    # gives the same shape without building a second (training-mode) graph, and keeps the
    # class axis static for JAX.
    net["final_reshape"] = ReshapeLayer(net["final_dimshuffle"], (-1, n_classes),
                                        name="final_reshape")
    net["last_layer"] = NonlinearityLayer(net["final_reshape"], nonlinearity=out_nonlin,
                                          name="last_layer")
    sizes = net["input"].input_var.shape  # (n_samples, channels, length) of the input
    net["probs_reshape"] = ReshapeLayer(net["last_layer"], (sizes[0], sizes[2], n_classes),
                                        name="probs_reshape")
    net["probs_dimshuffle"] = DimshuffleLayer(net["probs_reshape"], (0, 2, 1),
                                              name="probs_dimshuffle")
    return [net["last_layer"]], net
