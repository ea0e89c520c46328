"""Gluon-CV ``.params`` and torchvision state dicts onto ``buildFCNResNet`` networks.

The network's layer names are the original module paths, so a key is ``<layer>.<param>``:

* convolution ``W`` / ``b``: ``<layer>.weight`` / ``<layer>.bias`` (Gluon-CV:
  ``conv1.0.weight``, ``layer1.0.downsample.0.weight``, ``head.block.4.bias``; torchvision:
  ``backbone.conv1.weight``, ``backbone.layer3.1.conv2.weight``, ``classifier.4.bias``);
* batch norm ``gamma``, ``beta``, ``mean``, ``inv_std``: Gluon-CV ``<bn>.gamma``,
  ``.beta``, ``.running_mean``, ``.running_var``; torchvision ``backbone.<bn>.weight``,
  ``.bias``, ``.running_mean``, ``.running_var`` and ``.num_batches_tracked`` (optional,
  checked to be an integer, not kept);
* heads: ``head.block.N`` / ``auxlayer.block.N`` (Gluon-CV), ``classifier.N`` /
  ``aux_classifier.N`` (torchvision); the ``skip=True`` layers (ours) under their own names.

Kernels need no conversion (both frameworks store cross-correlation kernels as
``(out, in, kh, kw)``, our convolutions use ``flip_filters=False``). Lasagne's
``BatchNormLayer`` keeps ``inv_std = 1 / sqrt(var + epsilon)`` where the frameworks keep the
variance: a running variance becomes ``1 / sqrt(running_var + layer.epsilon)`` (in float64,
then the parameter's dtype). The one rule to know: every key and array is checked -- the
key sets must match exactly (missing, unexpected and mis-shaped keys are errors, naming the
file, key, layer, parameter and shapes), values must be finite floats and variances
non-negative -- before any value is set, so a bad file leaves the network unchanged.
"""

import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..layers import BatchNormLayer
from .assign import WeightLoadError
from .mxnet_params import NDARRAY_LIST_MAGIC, read_mxnet_params, write_mxnet_params

__all__ = ["fcn_resnet_variant", "fcn_resnet_keys", "fcn_resnet_state_dict",
           "load_fcn_resnet", "save_fcn_resnet_params"]

_BN_KEYS = {
    "gluoncv": (("gamma", "gamma"), ("beta", "beta"), ("mean", "running_mean"),
                ("inv_std", "running_var")),
    "torchvision": (("gamma", "weight"), ("beta", "bias"), ("mean", "running_mean"),
                    ("inv_std", "running_var")),
}
_HEAD_PREFIXES = {"gluoncv": ("head.block.", "auxlayer.block."),
                  "torchvision": ("classifier.", "aux_classifier.")}
_OURS = ("score_c3", "score_c2", "up_to_c3", "up_to_c2")


def fcn_resnet_variant(net):
    """``'gluoncv'`` or ``'torchvision'``, from the network's head layer names."""
    if "head.block.0" in net:
        return "gluoncv"
    if "classifier.0" in net:
        return "torchvision"
    raise ValueError("not a buildFCNResNet network: it has neither 'head.block.0' "
                     "(Gluon-CV) nor 'classifier.0' (torchvision)")


def _prefix(name, variant):
    if variant == "torchvision" and not name.startswith(_HEAD_PREFIXES["torchvision"]) \
            and name not in _OURS:
        return "backbone." + name
    return name


def fcn_resnet_keys(net):
    """``{key: (layer name, parameter attribute)}`` in the variant's key order.

    Parameter attributes are ``'W'``, ``'b'``, ``'gamma'``, ``'beta'``, ``'mean'`` and
    ``'inv_std'``; ``inv_std`` is under the ``running_var`` key.
    """
    variant = fcn_resnet_variant(net)
    keys = OrderedDict()
    for name, layer in net.items():
        if not layer.params:
            continue
        module = _prefix(name, variant)
        if isinstance(layer, BatchNormLayer):
            pairs = [(attr, key) for attr, key in _BN_KEYS[variant]
                     if getattr(layer, attr, None) is not None]
        else:
            pairs = [(attr, key) for attr, key in (("W", "weight"), ("b", "bias"))
                     if getattr(layer, attr, None) is not None]
        for attr, key in pairs:
            keys[f"{module}.{key}"] = (name, attr)
    return keys


def _read(source_or_arrays):
    if isinstance(source_or_arrays, Mapping):
        arrays = OrderedDict()
        for key, value in source_or_arrays.items():
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            arrays[key[7:] if key.startswith("module.") else key] = value
        return "<state dict>", arrays
    source = os.fspath(source_or_arrays)
    with open(source, "rb") as stream:  # a missing file stays a FileNotFoundError
        head = stream.read(8)
    if len(head) == 8 and int.from_bytes(head, "little") == NDARRAY_LIST_MAGIC:
        return source, read_mxnet_params(source)
    from .torch_state import read_torch_state_dict

    return source, read_torch_state_dict(source)


def _short(keys, limit=4):
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _check_keys(source, variant, arrays, expected, exclude):
    optional = {key[:-len("running_var")] + "num_batches_tracked"
                for key in expected if variant == "torchvision"
                and key.endswith(".running_var")}
    given = [k for k in arrays if not any(word in k for word in exclude)]
    missing = [k for k in expected if k not in arrays and not any(w in k for w in exclude)]
    extra = [k for k in given if k not in expected and k not in optional]
    if not missing and not extra:
        return
    other = "torchvision" if variant == "gluoncv" else "gluoncv"
    hint = ""
    if any(k.startswith(("backbone.", "classifier.")) for k in extra) and variant == "gluoncv":
        hint = f"; the file looks like a {other} state dict: build with variant={other!r}"
    elif any(k.startswith(("head.block.", "auxlayer.")) for k in extra) \
            and variant == "torchvision":
        hint = f"; the file looks like {other} .params: build with variant={other!r}"
    parts = []
    if missing:
        parts.append(f"{len(missing)} key(s) of the {variant} network missing: "
                     f"{_short(missing)}")
    if extra:
        parts.append(f"{len(extra)} unexpected key(s): {_short(extra)}")
    raise WeightLoadError(f"{source}: not the weights of this network ({'; '.join(parts)})"
                          f"{hint}")


def _checked_batch_counter(source, key, value):
    value = np.asarray(value)
    if value.size != 1 or value.dtype.kind not in "iu":
        raise WeightLoadError(f"{source}: key {key!r}: expected an integer scalar "
                              f"(num_batches_tracked), got {value.dtype} of shape "
                              f"{value.shape}")


def _prepare(source, key, layer_name, layer, attr, value, allow_nonfinite):
    param = getattr(layer, attr)
    target = param.get_value(borrow=True)
    where = f"key {key!r} (layer {layer_name!r} parameter {attr})"
    value = np.asarray(value)
    if value.dtype.kind != "f":
        raise WeightLoadError(f"{source}: {where} has dtype {value.dtype}, expected floating "
                              "point weights")
    if not allow_nonfinite and not np.isfinite(value).all():
        raise WeightLoadError(f"{source}: {where} holds {int(np.isnan(value).sum())} NaN and "
                              f"{int(np.isinf(value).sum())} infinite values, expected finite "
                              "weights (allow_nonfinite=True loads them anyway)")
    if value.shape != target.shape:
        raise WeightLoadError(f"{source}: {where}: expected shape {tuple(target.shape)}, "
                              f"got {tuple(value.shape)}")
    if attr == "inv_std":
        variance = value.astype(np.float64)
        if np.any(variance < 0):
            raise WeightLoadError(f"{source}: {where}: expected non-negative running "
                                  f"variances, got a minimum of {variance.min()}")
        value = 1.0 / np.sqrt(variance + layer.epsilon)
    return param, np.ascontiguousarray(value, dtype=target.dtype)


def load_fcn_resnet(net, path_or_state_dict, exclude=(), allow_nonfinite=False):
    """Load Gluon-CV ``.params`` or a torchvision state dict into a ``buildFCNResNet`` net.

    Parameters
    ----------
    net : dict
        The builder's ordered dict (its head names say the variant).
    path_or_state_dict : str, path-like or mapping
        An MXNet ``.params`` file (recognised by its header), a file written by
        ``torch.save`` (read with ``torch.load(weights_only=True)``; PyTorch needed), or a
        mapping of keys to arrays / tensors.
    exclude : sequence of str
        Keys containing one of these are neither loaded nor required (e.g.
        ``('head.block.4', 'auxlayer.block.4')`` to fine-tune with other classes).
    allow_nonfinite : bool, default False

    Returns
    -------
    list of str
        The keys that were loaded, in the network's order.

    Raises
    ------
    WeightLoadError
        For an unreadable file, missing / unexpected / mis-shaped keys, non-float or
        non-finite values, or negative variances; ``net`` is then unchanged.
    """
    variant = fcn_resnet_variant(net)
    source, arrays = _read(path_or_state_dict)
    expected = fcn_resnet_keys(net)
    _check_keys(source, variant, arrays, expected, tuple(exclude))
    for key, value in arrays.items():
        if key.endswith(".num_batches_tracked"):
            _checked_batch_counter(source, key, value)
    updates, loaded = [], []
    for key, (layer_name, attr) in expected.items():
        if any(word in key for word in exclude):
            continue
        updates.append(_prepare(source, key, layer_name, net[layer_name], attr, arrays[key],
                                allow_nonfinite))
        loaded.append(key)
    for param, value in updates:
        param.set_value(value)
    return loaded


def fcn_resnet_state_dict(net):
    """The network's parameters under its variant's keys, as NumPy arrays (``inv_std``
    back to ``running_var = 1 / inv_std**2 - epsilon``; no ``num_batches_tracked``)."""
    result = OrderedDict()
    for key, (layer_name, attr) in fcn_resnet_keys(net).items():
        layer = net[layer_name]
        value = np.array(getattr(layer, attr).get_value())
        if attr == "inv_std":
            value = (1.0 / value.astype(np.float64) ** 2 - layer.epsilon).astype(value.dtype)
        result[key] = value
    return result


def save_fcn_resnet_params(net, path, version="v2"):
    """Write a Gluon-CV network's parameters as an MXNet ``.params`` file (atomically)."""
    if fcn_resnet_variant(net) != "gluoncv":
        raise ValueError("save_fcn_resnet_params writes Gluon-CV keys: build the network "
                         "with variant='gluoncv'")
    write_mxnet_params(path, fcn_resnet_state_dict(net), version=version)
