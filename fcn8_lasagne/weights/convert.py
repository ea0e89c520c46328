"""Convert pretrained weights of other frameworks to the tutorial's Lasagne ``.npz``.

:func:`convert` builds a model, loads a foreign weight file into it and saves all its
parameters with :func:`fcn8_lasagne.weights.save_npz` (``arr_0 ... arr_{n-1}`` in
``get_all_params`` order), the format ``buildFCN8(..., load_weights=True)`` and the
tutorial scripts read. It backs the ``fcn8 convert`` command.
"""

import os
import warnings

import pytensor.tensor as pt

from ..files import check_weight_values
from .assign import CAFFE_TO_TUTORIAL_NAMES, WeightLoadError, assign_params
from .caffe import caffe_layers_to_fcn, read_caffemodel
from .lasagne_vgg16 import VGG16_LAYERS, lasagne_vgg16_to_fcn, read_lasagne_vgg16
from .matconvnet import TUTORIAL_SKIPPED, matconvnet_to_fcn, read_matconvnet_params
from .npz import save_npz
from .torch_state import read_torch_state_dict, torch_state_to_fcn

__all__ = ["FORMATS", "FORMAT_ALIASES", "MODELS", "guess_format", "build_model", "read_source",
           "load_into", "convert"]

#: Weight-file formats, with the file extensions :func:`guess_format` maps to them.
FORMATS = {
    "lasagne-vgg16": (".pkl", ".pickle"),
    "matconvnet": (".mat",),
    "torch": (".pth", ".pt", ".tar"),
    "caffe": (".caffemodel",),
}

#: Other names accepted for a format.
FORMAT_ALIASES = {"vgg16-pkl": "lasagne-vgg16", "pytorch": "torch", "caffemodel": "caffe",
                  "mat": "matconvnet"}

#: Model names accepted by :func:`build_model`: the tutorial's builders and the
#: Caffe-semantics ones (:mod:`fcn8_lasagne.models.caffe_fcn`).
MODELS = (
    "fcn8",
    "fcn16",
    "fcn32",
    "fcn8s-caffe",
    "fcn8s-atonce-caffe",
    "fcn16s-caffe",
    "fcn32s-caffe",
)


def guess_format(path):
    """The format name of a weight file from its extension.

    Raises
    ------
    ValueError
        For an extension of none of :data:`FORMATS`.
    """
    extension = os.path.splitext(os.fspath(path))[1].lower()
    for name, extensions in FORMATS.items():
        if extension in extensions:
            return name
    raise ValueError(
        f"{os.fspath(path)}: cannot tell the weight format from the extension "
        f"{extension!r}; give one of {', '.join(FORMATS)}"
    )


def build_model(model="fcn8", n_classes=21, nb_in_channels=3, input_var=None):
    """Build one of :data:`MODELS` and return its layer dictionary.

    The tutorial builders are called with ``load_weights=False`` so that nothing is read
    from their default ``path_weights``.
    """
    from .. import models
    from ..models import caffe_fcn

    if input_var is None:
        input_var = pt.tensor4("input")
    tutorial = {"fcn8": "buildFCN8", "fcn16": "buildFCN16", "fcn32": "buildFCN32"}
    if model in tutorial:
        net = getattr(models, tutorial[model])(nb_in_channels, input_var,
                                              n_classes=n_classes, load_weights=False)
        if not isinstance(net, dict):
            raise TypeError(f"{tutorial[model]} returned {type(net).__name__}, expected "
                            "the layer dictionary")
        return net
    caffe_builders = {
        "fcn8s-caffe": lambda: caffe_fcn.buildFCN8s_caffe(nb_in_channels, input_var,
                                                          n_classes=n_classes),
        "fcn8s-atonce-caffe": lambda: caffe_fcn.buildFCN8s_caffe(
            nb_in_channels, input_var, n_classes=n_classes, at_once=True),
        "fcn16s-caffe": lambda: caffe_fcn.buildFCN16s_caffe(nb_in_channels, input_var,
                                                            n_classes=n_classes),
        "fcn32s-caffe": lambda: caffe_fcn.buildFCN32s_caffe(nb_in_channels, input_var,
                                                            n_classes=n_classes),
    }
    if model not in caffe_builders:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    return caffe_builders[model]()


def read_source(src, fmt, trust_pickle=False, allow_nonfinite=False):
    """Read the weight file ``src`` of format ``fmt`` (not ``'auto'``), checking that it is
    of that format and (unless ``allow_nonfinite``) that its values are finite, before any
    network is built.

    Returns
    -------
    object
        The format reader's result, for :func:`load_into`'s ``contents``.
    """
    source = os.fspath(src)
    if fmt == "lasagne-vgg16":
        contents = read_lasagne_vgg16(src, trust=trust_pickle)
        values = list(contents["param values"])
        names = [f"param values[{i}]" for i in range(len(values))]
    elif fmt == "matconvnet":
        contents = read_matconvnet_params(src)
        names, values = [name for name, _ in contents], [value for _, value in contents]
    elif fmt == "torch":
        contents = read_torch_state_dict(src)
        names, values = list(contents), list(contents.values())
    elif fmt == "caffe":
        contents = read_caffemodel(src)
        names = [f"layer {name!r} blob {i}" for name, _, blobs in contents
                 for i in range(len(blobs))]
        values = [blob for _, _, blobs in contents for blob in blobs]
    else:
        raise ValueError(f"unknown weight format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        check_weight_values(values, source, names, allow_nonfinite=allow_nonfinite,
                            check_dtype=False)
    except ValueError as error:
        raise WeightLoadError(str(error)) from None
    return contents


def load_into(net, src, fmt, trust_pickle=False, exclude=None, strict=True,
              allow_nonfinite=False, contents=None):
    """Load the weight file ``src`` of format ``fmt`` into ``net``.

    Parameters
    ----------
    net : dict
    src : str or os.PathLike
    fmt : str
        One of :data:`FORMATS` (or :data:`FORMAT_ALIASES`), or ``'auto'`` (from the
        extension).
    trust_pickle : bool
        Required (``True``) for ``'lasagne-vgg16'``: unpickling runs code.
    exclude : sequence of str or None
        Substrings of layer names not to load; ``None`` means the format's default
        (the tutorial's ``score``/``upsample``/``final``/``probs`` for MatConvNet, nothing
        otherwise). Ignored for ``'lasagne-vgg16'``, which never loads ``fc8``.
    strict : bool
        Whether a layer of the file missing from ``net`` is an error.
    allow_nonfinite : bool
        Accept NaN and infinite values (by default an error).
    contents : object, optional
        What :func:`read_source` returned for ``src`` (then the file is not read again).

    Returns
    -------
    list of str
        The layers of ``net`` that were set.
    """
    fmt = guess_format(src) if fmt == "auto" else FORMAT_ALIASES.get(fmt, fmt)
    if contents is None:
        contents = read_source(src, fmt, trust_pickle, allow_nonfinite=allow_nonfinite)
    source = os.fspath(src)
    assign = dict(convention="cross_correlation", allow_nonfinite=allow_nonfinite)
    excluded = tuple(exclude or ())
    if fmt == "lasagne-vgg16":
        values = lasagne_vgg16_to_fcn(contents["param values"], source)
        assign_params(net, values, source, **assign)
        return [name for name in VGG16_LAYERS if name != "fc8"]
    if fmt == "matconvnet":
        skip = TUTORIAL_SKIPPED if exclude is None else tuple(exclude)
        values = matconvnet_to_fcn(contents, source, skip=skip)
    elif fmt == "torch":
        values = torch_state_to_fcn(contents, source, exclude=excluded)
    else:
        values = caffe_layers_to_fcn(contents, net, source, exclude=excluded)
    return assign_params(net, values, source, strict=strict, **assign)


def _left_out(layer, fmt, exclude, body_loaded):
    """Whether the model layer ``layer`` is not loaded on purpose (see :func:`convert`)."""
    if (fmt == "lasagne-vgg16" or body_loaded) and layer not in VGG16_LAYERS:
        return True  # an ImageNet VGG-16 file: the layers beyond the body are not in it
    words = TUTORIAL_SKIPPED if fmt == "matconvnet" and exclude is None else (exclude or ())
    names = [layer] + [caffe for caffe, ours in CAFFE_TO_TUTORIAL_NAMES.items() if ours == layer]
    return any(word in name for word in words for name in names)


def convert(src, out_npz, fmt="auto", model="fcn8", n_classes=21, trust_pickle=False,
            nb_in_channels=3, exclude=None, strict=True, allow_nonfinite=False):
    """Convert a pretrained weight file to a Lasagne ``.npz`` for ``model``.

    Parameters
    ----------
    src : str or os.PathLike
        The weight file: Lasagne Recipes ``vgg16.pkl``, MatConvNet DagNN ``.mat``,
        PyTorch state dict (torchvision vgg16 or pytorch-fcn FCN8s/16s/32s) or Caffe
        ``.caffemodel``.
    out_npz : str or os.PathLike
        Where to write the ``.npz`` (``arr_i`` in ``get_all_params`` order).
    fmt : str
        ``'auto'`` (default, from the extension) or one of :data:`FORMATS` (or
        :data:`FORMAT_ALIASES`).
    model : str
        One of :data:`MODELS`; the ``.npz`` holds this model's parameters.
    n_classes : int
    trust_pickle : bool
        Must be ``True`` to read a pickle (``'lasagne-vgg16'``); see
        :mod:`fcn8_lasagne.weights.lasagne_vgg16`.
    nb_in_channels : int
    exclude : sequence of str or None
        See :func:`load_into`.
    strict : bool
        When true (default), a partial match is an error and nothing is written: a layer
        of the file that the model lacks, or a layer of the model with parameters that the
        file does not cover, other than those left out on purpose (named by ``exclude``,
        directly or by their Caffe name, MatConvNet's default exclusions, or the layers
        beyond the VGG-16 body when the file is a whole ImageNet VGG-16 (conv1_1 … fc7),
        as ``vgg16.pkl`` and torchvision's ``vgg16`` are). When false, such file layers are
        skipped and such model layers keep their initial values.
    allow_nonfinite : bool
        Accept NaN and infinite values in ``src`` (by default an error, raised before the
        model is built).

    Returns
    -------
    list of str
        The layers whose weights came from ``src``. Layers with parameters that the file
        did not cover keep their initial values; a warning names them.

    Raises
    ------
    WeightLoadError
        With ``strict``, on a model layer the file does not cover; ``out_npz`` is then not
        written.
    """
    # cheap checks first: building a full-size model takes seconds and a gigabyte
    fmt = guess_format(src) if fmt == "auto" else FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if not os.path.isfile(src):
        raise FileNotFoundError(f"no such weight file: {os.fspath(src)}")
    contents = read_source(src, fmt, trust_pickle, allow_nonfinite)  # before the model
    net = build_model(model, n_classes=n_classes, nb_in_channels=nb_in_channels)
    loaded = load_into(net, src, fmt, trust_pickle=trust_pickle, exclude=exclude,
                       strict=strict, allow_nonfinite=allow_nonfinite, contents=contents)
    untouched = [
        name for name, layer in net.items()
        if getattr(layer, "W", None) is not None and name not in loaded
    ]
    body = [name for name in VGG16_LAYERS if name != "fc8" and name in net]
    body_loaded = bool(body) and all(name in loaded for name in body)
    missing = [name for name in untouched if not _left_out(name, fmt, exclude, body_loaded)]
    if strict and missing:
        raise WeightLoadError(
            f"{os.fspath(src)}: covers {len(loaded)} of the {len(loaded) + len(untouched)} "
            f"layers with parameters of {model}; no weights for {', '.join(missing)} "
            f"(nothing written to {os.fspath(out_npz)}; --exclude them, or --no-strict to "
            "keep their initial values)")
    if untouched:
        warnings.warn(
            f"{os.fspath(src)}: no weights for {', '.join(untouched)}; they keep their "
            "initial values in " + os.fspath(out_npz),
            stacklevel=2,
        )
    output_layer = next(reversed(net.values()))
    save_npz(output_layer, out_npz)
    return loaded
