"""PyTorch state dicts: torchvision VGG16 and pytorch-fcn FCN8s / FCN16s / FCN32s.

Files are read with ``torch.load(path, map_location='cpu', weights_only=True)``, which
unpickles only tensors and plain containers. PyTorch is an optional dependency
(``pip install fcn8_lasagne[torch]``), imported only when a file is read.

Two layouts are recognised from the keys:

- **torchvision** ``vgg16``: ``features.N.weight`` / ``.bias`` for the 13 convolutions
  (N = 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), ``classifier.0`` (fc6, a
  ``(4096, 25088)`` ``Linear`` that becomes the ``(4096, 512, 7, 7)`` convolution),
  ``classifier.3`` (fc7, becomes ``(4096, 4096, 1, 1)``) and ``classifier.6`` (the
  ImageNet classifier, not loaded). It expects RGB inputs scaled to [0, 1] and normalised
  by the ImageNet mean and standard deviation.
- **pytorch-fcn** (``torchfcn.models.FCN8s`` and siblings, converted from Caffe), or
  any state dict whose module names are layer names (``<layer>.weight``, ``<layer>.bias``):
  ``conv1_1.weight`` ... ``fc7``, ``score_fr``, ``score_pool4``, ``score_pool3`` and the
  bias-free ``ConvTranspose2d`` s ``upscore2``, ``upscore_pool4``, ``upscore8`` (FCN8s),
  ``upscore16`` (FCN16s) or ``upscore`` (FCN32s). These map to the layers of the same
  name in the Caffe-semantics builders and to ``score2``, ``score4`` and ``upsample`` in
  the tutorial's builders, whose deconvolution biases are then set to zero. They expect
  BGR inputs in [0, 255] minus the mean (104.00699, 116.66877, 122.67892).
  ``FCN8sAtOnce`` scales its skips inside ``forward``, so its file looks like an
  ``FCN8s`` one: load it into ``buildFCN8s_caffe(..., at_once=True)``.

Kernels are PyTorch's cross-correlation convention; transposed-convolution kernels are
rotated by 180 degrees for the default ``flip_filters=False`` of our
``TransposedConv2DLayer`` (see :mod:`fcn8_lasagne.weights.assign`).
"""

import os
import pickle
from collections.abc import Mapping

import numpy as np

from ..files import describe_content
from .assign import WeightLoadError, assign_params
from .lasagne_vgg16 import VGG16_CONV_LAYERS

__all__ = ["TORCHVISION_VGG16_KEYS", "read_torch_state_dict", "torch_state_to_fcn",
           "load_torch"]

_TORCHVISION_FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

#: torchvision ``vgg16`` module prefix to FCN layer name (``classifier.6`` is left out).
TORCHVISION_VGG16_KEYS = dict(
    zip([f"features.{i}" for i in _TORCHVISION_FEATURE_INDICES], VGG16_CONV_LAYERS)
)
TORCHVISION_VGG16_KEYS.update({"classifier.0": "fc6", "classifier.3": "fc7"})

_CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "reading PyTorch files needs PyTorch: pip install 'fcn8_lasagne[torch]'"
        ) from error
    return torch


def _to_numpy(tensor):
    torch = _import_torch()
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()  # bfloat16 has no NumPy twin; keep both halves alike
    return tensor.numpy()


def read_torch_state_dict(path):
    """Read a state dict (or a training checkpoint holding one) as NumPy arrays.

    Accepts a plain ``state_dict``, a checkpoint dict with ``'model_state_dict'``,
    ``'state_dict'`` or ``'model'``, and strips a ``module.`` prefix (``DataParallel``).

    Returns
    -------
    dict of str to numpy.ndarray
    """
    path = os.fspath(path)
    with open(path, "rb") as stream:  # a missing file stays a FileNotFoundError
        kind = describe_content(stream.read(64))
        stream.seek(0)
        if kind is not None and kind != "a Python pickle":
            raise WeightLoadError(
                f"{path}: not a PyTorch file (torch.save writes a zip archive or a "
                f"pickle): {kind}")
        torch = _import_torch()
        try:
            contents = torch.load(stream, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # torch's message advises weights_only=False, which would run the file's code
            raise WeightLoadError(
                f"{path}: not loaded: it holds Python objects other than tensors and plain "
                "containers (a whole pickled model?); save its state_dict() instead"
            ) from None
        except Exception as error:  # KeyError, RuntimeError, ... from a foreign file
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            if "weights_only" in reason or "allow_pickle" in reason:
                reason = ""
            raise WeightLoadError(
                f"{path}: not a readable PyTorch state dict ({type(error).__name__}"
                f"{': ' + reason if reason else ''})") from None
    return _state_dict_as_arrays(contents, path)


def _state_dict_as_arrays(contents, source):
    torch = _import_torch()
    if isinstance(contents, Mapping):
        for key in _CHECKPOINT_KEYS:
            if isinstance(contents.get(key), Mapping):
                contents = contents[key]
                break
    if not isinstance(contents, Mapping):
        raise WeightLoadError(
            f"{source}: expected a state dict (a mapping of names to tensors), "
            f"got {type(contents).__name__}"
        )
    arrays = {}
    for key, value in contents.items():
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            continue  # e.g. an optimizer's step counter stored beside the weights
        name = key[len("module."):] if key.startswith("module.") else key
        arrays[name] = _to_numpy(value) if isinstance(value, torch.Tensor) else value
    return arrays


def _detect_layout(arrays, source):
    if any(key.startswith("features.") for key in arrays):
        if any(key.endswith(("running_mean", "running_var")) for key in arrays):
            raise WeightLoadError(
                f"{source}: this is a batch-normalised VGG (vgg16_bn); only the plain "
                "torchvision vgg16 maps onto the FCN body"
            )
        return "torchvision"
    return "by-name"


def _group_by_module(arrays, source):
    """``{'a.weight': W, 'a.bias': b}`` to ``{'a': [W, b]}`` (``b`` None if absent)."""
    modules = {}
    for key, value in arrays.items():
        module, _, kind = key.rpartition(".")
        if kind not in ("weight", "bias") or not module:
            raise WeightLoadError(
                f"{source}: unexpected entry {key!r} of shape {tuple(value.shape)} "
                "(expected '<module>.weight' / '<module>.bias')"
            )
        modules.setdefault(module, {})[kind] = value
    grouped = {}
    for module, entry in modules.items():
        if "weight" not in entry:
            raise WeightLoadError(f"{source}: module {module!r} has a bias but no weight")
        grouped[module] = [entry["weight"], entry.get("bias")]
    return grouped


def torch_state_to_fcn(arrays, source, exclude=()):
    """Map a state dict's arrays to ``{layer: [W, b]}`` in Caffe / FCN naming.

    Parameters
    ----------
    arrays : dict of str to numpy.ndarray
    source : str
        Used in error messages.
    exclude : sequence of str
        Layers (after renaming) whose name contains one of these substrings are left out.
    """
    layout = _detect_layout(arrays, source)
    grouped = _group_by_module(arrays, source)
    values = {}
    for module, pair in grouped.items():
        if layout == "torchvision":
            if module == "classifier.6":
                continue  # the ImageNet classifier (fc8)
            name = TORCHVISION_VGG16_KEYS.get(module)
            if name is None:
                raise WeightLoadError(
                    f"{source}: module {module!r} of shape {tuple(pair[0].shape)} is not "
                    "part of torchvision's vgg16"
                )
        else:
            name = module
        if any(word in name for word in exclude):
            continue
        values[name] = pair
    return values


def load_torch(net, path_or_state_dict, exclude=(), strict=True, allow_nonfinite=False):
    """Load a torchvision VGG16 or pytorch-fcn FCN state dict into ``net``.

    Parameters
    ----------
    net : dict
        Layer name to layer (tutorial or Caffe-semantics builders).
    path_or_state_dict : str, os.PathLike or mapping
        A file written by ``torch.save`` or an in-memory state dict.
    exclude : sequence of str
        Skip layers whose name contains one of these (e.g. ``('score', 'upscore')`` to
        take only the VGG body of a 21-class FCN into a net with other classes).
    strict : bool
        When true, a layer missing from ``net`` is an error; else it is skipped.
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default an error, as are non-float dtypes).

    Returns
    -------
    list of str
        The layers of ``net`` that were set.

    Raises
    ------
    WeightLoadError
        On an unreadable file, an unknown layout or layer, or a shape mismatch; ``net`` is
        then unchanged.
    ImportError
        When PyTorch is not installed.
    """
    if isinstance(path_or_state_dict, Mapping):
        source = "<state dict>"
        arrays = _state_dict_as_arrays(path_or_state_dict, source)
    else:
        source = os.fspath(path_or_state_dict)
        arrays = read_torch_state_dict(source)
    values = torch_state_to_fcn(arrays, source, exclude=exclude)
    return assign_params(net, values, source, convention="cross_correlation", strict=strict,
                         allow_nonfinite=allow_nonfinite)
