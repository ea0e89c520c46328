"""Weight files: Lasagne ``.npz`` and the formats pretrained FCN/VGG weights come in.

* :mod:`~fcn8_lasagne.weights.npz` — the tutorial's ``arr_i`` files (save/load, atomic).
* :mod:`~fcn8_lasagne.weights.lasagne_vgg16` — Lasagne Recipes ``vgg16.pkl`` (pickle: needs
  ``trust=True``).
* :mod:`~fcn8_lasagne.weights.matconvnet` — MatConvNet DagNN ``.mat`` (``pascal=True``).
* :mod:`~fcn8_lasagne.weights.torch_state` — PyTorch state dicts (torchvision VGG16,
  pytorch-fcn FCN8s/16s/32s).
* :mod:`~fcn8_lasagne.weights.caffe` — Caffe ``.caffemodel`` via a shipped ``caffe.proto``.
* :mod:`~fcn8_lasagne.weights.convert` — any of them to a Lasagne ``.npz``.

Every loader checks all shapes before setting any value (:func:`assign_params`), so a bad
file raises an error naming the file, the layer and the shapes and leaves the net unchanged.
NaN or infinite values and non-float dtypes are refused too, unless ``allow_nonfinite=True``
(for the values). The plain readers the model builders also use (``arr_i`` ``.npz``,
MatConvNet) live in :mod:`fcn8_lasagne.files`, because ``models`` never imports this package.
"""

from .assign import WeightLoadError, assign_params
from .caffe import load_caffemodel, read_caffemodel
from .convert import FORMAT_ALIASES, FORMATS, MODELS, guess_format
from .convert import convert as convert_weights
from .lasagne_vgg16 import load_lasagne_vgg16, read_lasagne_vgg16
from .matconvnet import load_matconvnet, read_matconvnet_params
from .npz import atomic_savez, load_npz, read_npz_shapes, read_npz_values, save_npz
from .torch_state import load_torch, read_torch_state_dict

__all__ = [
    "save_npz", "load_npz", "read_npz_values", "read_npz_shapes", "atomic_savez",
    "WeightLoadError", "assign_params",
    "load_lasagne_vgg16", "read_lasagne_vgg16",
    "load_matconvnet", "read_matconvnet_params",
    "load_torch", "read_torch_state_dict",
    "load_caffemodel", "read_caffemodel",
    "convert_weights", "guess_format", "FORMATS", "FORMAT_ALIASES", "MODELS",
]

# Gluon-CV .params (MXNet NDArray lists) and torchvision state dicts of buildFCNResNet
from .fcn_resnet import load_fcn_resnet, save_fcn_resnet_params  # noqa: E402
from .mxnet_params import read_mxnet_params, write_mxnet_params  # noqa: E402

__all__ += ["load_fcn_resnet", "save_fcn_resnet_params", "read_mxnet_params",
            "write_mxnet_params"]
