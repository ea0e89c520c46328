"""The tutorial's FCN-8 written independently in PyTorch, loadable from our parameter list.

Written from the tutorial's layer table (``docs/fcn8-semantics.md``), not from
``fcn8_lasagne``: VGG16 with ``pad=100`` on ``conv1_1`` and 'same' padding elsewhere, ReLU
after every convolution (the score convolutions included), floor 2x2 max-pooling, ``fc6`` a
7x7 convolution and ``fc7`` a 1x1 one, each followed by dropout, three transposed
convolutions with biases (kernel 4 stride 2, kernel 4 stride 2, kernel 16 stride 8), centre
crops with offset ``(size - smallest) // 2`` where two maps are summed, a final centre crop to
the input's height and width, and a softmax over the classes.

:func:`load_lasagne_params` takes the 42 arrays in Lasagne's order (``get_all_params``, the
tutorial's ``.npz``): convolution filters as they are (Lasagne's ``flip_filters=False`` is
PyTorch's cross-correlation; the 1x1 score convolutions are the same either way), and the
transposed-convolution filters rotated by 180 degrees, because Lasagne's
``TransposedConv2DLayer(flip_filters=False)`` equals ``conv_transpose2d(x, W[:, :, ::-1, ::-1])``.

:func:`tutorial_loss` is ``train_fcn8.py``'s loss (probabilities clipped to
``[1e-6, 1 - 1e-6]``, void pixels masked, mean cross-entropy) so that a training step does the
same work on both sides. Used by ``bench_fcn8.py``; importable on its own.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TorchFCN8", "load_lasagne_params", "lasagne_param_shapes", "tutorial_loss",
           "center_crop"]

#: (block, number of convolutions, filters) of the VGG16 body.
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
#: Transposed convolutions: name → (kernel size, stride).
DECONVOLUTIONS = {"score2": (4, 2), "score4": (4, 2), "upsample": (16, 8)}
#: Layers with parameters in Lasagne's ``get_all_params`` order.
PARAMETER_ORDER = [f"conv{block}_{index}" for block, count, _ in VGG16_BLOCKS
                   for index in range(1, count + 1)] + [
    "fc6", "fc7", "score_fr", "score2", "score_pool4", "score4", "score_pool3", "upsample"]
#: Probabilities are clipped to ``[CLIP, 1 - CLIP]`` in the loss (``10e-7`` in the tutorial).
CLIP = 1e-6


def center_crop(tensor, height, width):
    """The centre ``height`` x ``width`` window of an NCHW tensor (Lasagne's 'center' crop).

    The offset on each axis is ``(size - target) // 2``; an odd difference leaves the extra
    row or column at the end.
    """
    top = (tensor.shape[2] - height) // 2
    left = (tensor.shape[3] - width) // 2
    return tensor[:, :, top:top + height, left:left + width]


def _sum_center_cropped(first, second):
    """Both maps cropped to their common smallest size and added (ElemwiseSumLayer)."""
    height = min(first.shape[2], second.shape[2])
    width = min(first.shape[3], second.shape[3])
    return center_crop(first, height, width) + center_crop(second, height, width)


class TorchFCN8(nn.Module):
    """FCN-8 as the deeplearning.net tutorial built it.

    Parameters
    ----------
    n_classes : int, default 2
    in_channels : int, default 3
    dropout : float, default 0.5
        Drop probability after ``fc6`` and ``fc7`` (active in ``train()`` mode only).
    """

    def __init__(self, n_classes=2, in_channels=3, dropout=0.5):
        super().__init__()
        self.n_classes = n_classes
        channels = in_channels
        for block, count, filters in VGG16_BLOCKS:
            for index in range(1, count + 1):
                padding = 100 if (block, index) == (1, 1) else 1
                setattr(self, f"conv{block}_{index}",
                        nn.Conv2d(channels, filters, 3, padding=padding))
                channels = filters
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.dropout = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(4096, n_classes, 1)
        self.score_pool4 = nn.Conv2d(512, n_classes, 1)
        self.score_pool3 = nn.Conv2d(256, n_classes, 1)
        for name, (kernel, stride) in DECONVOLUTIONS.items():
            setattr(self, name, nn.ConvTranspose2d(n_classes, n_classes, kernel, stride=stride))

    def scores(self, images):
        """Class scores (B, n_classes, H, W) before the softmax, cropped to the images."""
        hidden, pools = images, {}
        for block, count, _ in VGG16_BLOCKS:
            for index in range(1, count + 1):
                hidden = F.relu(getattr(self, f"conv{block}_{index}")(hidden))
            hidden = F.max_pool2d(hidden, 2)  # floor, as Lasagne's ignore_border=True
            pools[block] = hidden
        hidden = self.dropout(F.relu(self.fc6(hidden)))
        hidden = self.dropout(F.relu(self.fc7(hidden)))
        hidden = self.score2(F.relu(self.score_fr(hidden)))
        hidden = _sum_center_cropped(hidden, F.relu(self.score_pool4(pools[4])))
        hidden = self.score4(hidden)
        hidden = _sum_center_cropped(hidden, F.relu(self.score_pool3(pools[3])))
        hidden = self.upsample(hidden)
        return center_crop(hidden, images.shape[2], images.shape[3])

    def forward(self, images):
        """Class probabilities (B, n_classes, H, W): the tutorial's ``probs_dimshuffle``."""
        return torch.softmax(self.scores(images), dim=1)

    def pixel_probabilities(self, images):
        """Probabilities as (B·H·W, n_classes) rows, the tutorial's ``probs`` layer."""
        return self(images).permute(0, 2, 3, 1).reshape(-1, self.n_classes)


def lasagne_param_shapes(model):
    """Shapes of the 42 parameters in Lasagne's order and layout (W then b per layer).

    PyTorch's ``ConvTranspose2d`` weight is (in, out, kh, kw), the layout of Lasagne's
    ``TransposedConv2DLayer``; ``Conv2d`` matches ``Conv2DLayer``.
    """
    shapes = []
    for name in PARAMETER_ORDER:
        layer = getattr(model, name)
        shapes += [tuple(layer.weight.shape), tuple(layer.bias.shape)]
    return shapes


def load_lasagne_params(model, values):
    """Set ``model``'s parameters from the 42 arrays of Lasagne's ``get_all_params`` order.

    Parameters
    ----------
    model : TorchFCN8
    values : sequence of ndarray
        As saved by the tutorial (``arr_0`` … ``arr_41``) or returned by
        ``fcn8_lasagne.layers.get_all_param_values``.

    Raises
    ------
    ValueError
        On a wrong count or shape.
    """
    expected = lasagne_param_shapes(model)
    if len(values) != len(expected):
        raise ValueError(f"expected {len(expected)} arrays, got {len(values)}")
    with torch.no_grad():
        for index, name in enumerate(PARAMETER_ORDER):
            layer = getattr(model, name)
            weight, bias = (np.asarray(values[2 * index + k], dtype=np.float32) for k in (0, 1))
            for value, shape in ((weight, expected[2 * index]), (bias, expected[2 * index + 1])):
                if value.shape != shape:
                    raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")
            if name in DECONVOLUTIONS:
                weight = weight[:, :, ::-1, ::-1]
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            layer.bias.copy_(torch.from_numpy(bias))


def tutorial_loss(pixel_probabilities, labels, void_label):
    """``train_fcn8.py``'s loss: mean clipped cross-entropy over the non-void pixels.

    Parameters
    ----------
    pixel_probabilities : Tensor (N, n_classes)
    labels : Tensor (N,) of int
    void_label : int
    """
    keep = labels != void_label
    lookup = torch.where(keep, labels, torch.zeros_like(labels))
    picked = pixel_probabilities.gather(1, lookup.long()[:, None])[:, 0]
    losses = -torch.log(picked.clamp(CLIP, 1 - CLIP))
    mask = keep.to(losses.dtype)
    return (losses * mask).sum() / mask.sum()
