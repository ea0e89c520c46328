"""Using trained weights: build the net for a weight file, predict labels, dump activations.

A weight file is checked before any network is built: its array count against the model's
(:data:`PARAM_COUNTS`), its dtypes (floating point) and its values (finite unless
``allow_nonfinite``), so a wrong file fails in a second with a message naming it.

The dilated-ResNet FCNs (``fcn_resnet50``, ``fcn_resnet101``) load from the ``.npz`` files
``fcn8 train`` writes (all parameters, BN running statistics included, in Lasagne's order),
from torchvision state dicts (``.pth``) and from Gluon-CV ``.params`` files
(:func:`load_fcn_resnet_model`); the variant, the aux head and the class count are read from
the file. They take ImageNet-normalised images: :func:`fcn_resnet_predict_function`
normalises the [0, 1] images the datasets give.
"""

import functools
import os

import numpy as np
import pytensor.tensor as pt

from . import compile as compiling
from .data import read_rgb_image
from .data.scale_crop import normalize_imagenet
from .files import atomic_write
from .layers import get_all_params, get_output, set_all_param_values
from .metrics import ConfusionMatrix
from .models import BUILDERS
from .models.summary import check_input_size
from .weights import atomic_savez, read_npz_shapes, read_npz_values

__all__ = [
    "PARAM_COUNTS",
    "FCN_RESNET_MODELS",
    "load_model",
    "load_fcn_resnet_model",
    "fcn_resnet_predict_function",
    "weight_n_classes",
    "check_n_classes",
    "predict_function",
    "predict_labels",
    "evaluate",
    "IMAGE_SUFFIXES",
    "iter_image_files",
    "predict_images",
    "activation_function",
    "dump_activations",
    "label_colors",
    "overlay",
    "read_image",
    "save_png",
]


#: Arrays in a Lasagne weight file of each tutorial model (``W`` and ``b`` of every layer
#: with parameters: the 16 of the VGG body and ``score_fr``, then the skips and upsamplings).
PARAM_COUNTS = {"fcn8": 42, "fcn16": 38, "fcn32": 34}

#: The dilated-ResNet FCN models and their backbones.
FCN_RESNET_MODELS = {"fcn_resnet50": "resnet50", "fcn_resnet101": "resnet101"}


def load_model(path, model="fcn8", n_classes=None, nb_in_channels=3, allow_nonfinite=False):
    """Build a network for a Lasagne ``.npz`` weight file and load it.

    Parameters
    ----------
    path : str
    model : {'fcn8', 'fcn16', 'fcn32', 'fcn_resnet50', 'fcn_resnet101'}
        The ResNet FCNs go to :func:`load_fcn_resnet_model` (which also reads ``.pth`` and
        ``.params`` files).
    n_classes : int, optional
        Taken from the file (the size of the last bias, ``upsample.b``) when omitted.
    nb_in_channels : int
    allow_nonfinite : bool, default False
        Accept NaN and infinite weights (by default an error: such a network predicts
        class 0 everywhere).

    Returns
    -------
    net : OrderedDict
    input_var : TensorVariable
    """
    if model in FCN_RESNET_MODELS:
        return load_fcn_resnet_model(path, model, n_classes=n_classes,
                                     allow_nonfinite=allow_nonfinite)
    if model not in BUILDERS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(BUILDERS)}")
    values = read_npz_values(path, allow_nonfinite=allow_nonfinite)
    shapes = [value.shape for value in values]
    if n_classes is None:
        n_classes, _ = _n_classes_of(shapes, path, model)
    else:
        _check_count(shapes, path, model)
    input_var = pt.tensor4("input")
    net = BUILDERS[model](nb_in_channels, input_var, n_classes=n_classes)
    try:
        set_all_param_values(net["probs"], values, allow_nonfinite=allow_nonfinite)
    except ValueError as error:
        raise ValueError(f"{path}: {error} (is this a {model} weight file?)") from None
    return net, input_var


# arrays of the two stems in Lasagne's order: V1s conv1.0, .3, .6 (W) and three BNs (4 each);
# V1b conv1 (W) and bn1
_STEM_ARRAYS = {"gluoncv": 3 + 3 * 4, "torchvision": 1 + 4}
# the aux head: 3x3 conv W, BN (4), 1x1 conv W and b
_AUX_ARRAYS = 1 + 4 + 2


def _fcn_resnet_layout_of_npz(path, shapes, model):
    """``(variant, n_classes)`` of a Lasagne ``.npz`` from its array shapes."""
    name = os.fspath(path)
    if not shapes or len(shapes[0]) != 4 or shapes[0][1] != 3 or shapes[0][2] not in (3, 7):
        raise ValueError(f"{name}: the first array {shapes[0] if shapes else None} is not the "
                         f"stem convolution of a {model} (64, 3, 3, 3) (Gluon-CV) or "
                         "(64, 3, 7, 7) (torchvision); is this a ResNet FCN weight file?")
    if len(shapes[-1]) != 1:
        raise ValueError(f"{name}: the last array {shapes[-1]} is not a head's bias "
                         f"(n_classes,); is this a {model} weight file?")
    return ("gluoncv" if shapes[0][2] == 3 else "torchvision"), int(shapes[-1][0])


def _fcn_resnet_layout_of_state(path):
    """``(variant, aux, n_classes)`` of a torchvision ``.pth`` or Gluon-CV ``.params``."""
    from .weights.mxnet_params import NDARRAY_LIST_MAGIC, read_mxnet_params
    from .weights.torch_state import read_torch_state_dict

    with open(path, "rb") as stream:
        head = stream.read(8)
    if len(head) == 8 and int.from_bytes(head, "little") == NDARRAY_LIST_MAGIC:
        arrays = read_mxnet_params(path)
    else:
        arrays = read_torch_state_dict(path)
    keys = {key[7:] if key.startswith("module.") else key for key in arrays}
    for variant, main, aux in (("gluoncv", "head.block.4.bias", "auxlayer.block.4.bias"),
                               ("torchvision", "classifier.4.bias", "aux_classifier.4.bias")):
        if main in keys:
            bias = arrays.get(main, arrays.get("module." + main))
            return variant, aux in keys, int(np.asarray(bias).shape[0])
    raise ValueError(f"{os.fspath(path)}: neither head.block.4.bias (Gluon-CV) nor "
                     "classifier.4.bias (torchvision) is in the file: not an FCN-ResNet "
                     "weight file")


def load_fcn_resnet_model(path, model="fcn_resnet50", n_classes=None, allow_nonfinite=False):
    """Build a dilated-ResNet FCN for a weight file and load it (eval-ready).

    Parameters
    ----------
    path : str
        A ``.npz`` written by ``fcn8 train`` (every parameter of the network, BN means and
        ``inv_std`` included, in Lasagne's order; with or without the aux head), a
        torchvision state dict (``.pth``) or a Gluon-CV ``.params`` file.
    model : {'fcn_resnet50', 'fcn_resnet101'}
    n_classes : int, optional
        Checked against the file's (the last head bias) when given.
    allow_nonfinite : bool

    Returns
    -------
    net : OrderedDict
    input_var : TensorVariable
        The network takes ImageNet-normalised RGB (see :func:`fcn_resnet_predict_function`).
    """
    from .models.fcn_resnet import buildFCNResNet, fcn_resnet_output_layers
    from .weights.fcn_resnet import load_fcn_resnet

    if model not in FCN_RESNET_MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(FCN_RESNET_MODELS)}")
    name = os.fspath(path)
    is_npz = name.lower().endswith(".npz")
    if is_npz:
        values = read_npz_values(path, allow_nonfinite=allow_nonfinite)
        variant, file_classes = _fcn_resnet_layout_of_npz(path, [v.shape for v in values],
                                                          model)
        aux = None
    else:
        variant, aux, file_classes = _fcn_resnet_layout_of_state(path)
    if n_classes is not None and int(n_classes) != file_classes:
        raise ValueError(f"{name}: the weights are for {file_classes} classes but "
                         f"{n_classes} were asked for")
    input_var = pt.tensor4("input")
    net = buildFCNResNet(3, input_var, n_classes=file_classes,
                         backbone=FCN_RESNET_MODELS[model], variant=variant,
                         aux=True if aux is None else aux)
    if not is_npz:
        load_fcn_resnet(net, path, allow_nonfinite=allow_nonfinite)
        return net, input_var
    with_aux = get_all_params(fcn_resnet_output_layers(net))
    main_only = get_all_params(net["probs"])
    if len(values) == len(main_only):
        tops = net["probs"]
    elif len(values) == len(with_aux):
        tops = fcn_resnet_output_layers(net)
    else:
        other = {"fcn_resnet50": "fcn_resnet101", "fcn_resnet101": "fcn_resnet50"}[model]
        raise ValueError(
            f"{name}: {len(values)} arrays, but a {variant} {model} has {len(with_aux)} "
            f"(with the aux head) or {len(main_only)} (without); is this a {other} file "
            f"(--model {other})?")
    try:
        set_all_param_values(tops, values, allow_nonfinite=allow_nonfinite)
    except ValueError as error:
        raise ValueError(f"{name}: {error} (is this a {model} weight file?)") from None
    return net, input_var


def fcn_resnet_predict_function(net, input_var, device="cpu"):
    """``f(X) -> probabilities (B, C, H, W)`` for [0, 1] images: ImageNet-normalised, then
    the deterministic network (BN running statistics, no dropout)."""
    probabilities = predict_function(net, input_var, device)

    def predict(images):
        return probabilities(normalize_imagenet(images))

    return predict


def weight_n_classes(path, model="fcn8"):
    """The class count a Lasagne weight file was trained for, from its array headers only.

    The last two arrays of every FCN are ``upsample.W`` (``(n, n, k, k)``) and ``upsample.b``
    (``(n,)``).

    Returns
    -------
    n_classes : int
    shapes : list of tuple
        The shapes of the last two arrays (``upsample.W``, ``upsample.b``), for messages.
    """
    return _n_classes_of(read_npz_shapes(path), path, model)


def _check_count(shapes, path, model):
    expected = PARAM_COUNTS.get(model)
    if expected is not None and len(shapes) != expected:
        others = [name for name, count in PARAM_COUNTS.items()
                  if count == len(shapes) and name != model]
        raise ValueError(
            f"{os.fspath(path)}: {len(shapes)} arrays, but {model} has {expected} parameters "
            f"(W and b of each layer with weights)"
            + (f"; it looks like a {others[0]} file (--model {others[0]})" if others else ""))


def _n_classes_of(shapes, path, model="fcn8"):
    """``(n_classes, last two shapes)`` from the array shapes of the weight file ``path``."""
    _check_count(shapes, path, model)
    if len(shapes) < 2 or len(shapes[-1]) != 1 or len(shapes[-2]) != 4:
        raise ValueError(f"{os.fspath(path)}: cannot infer the class count: the last arrays "
                         f"{shapes[-2:]} are not upsample.W (n, n, k, k) and upsample.b (n,)")
    return int(shapes[-1][0]), shapes[-2:]


def check_n_classes(path, class_names, dataset_name="the dataset", model="fcn8"):
    """Raise ``ValueError`` if the weight file at ``path`` is not for ``len(class_names)``
    classes (or not a ``model`` file), naming the file, both class counts and the shapes."""
    n_classes, (w_shape, b_shape) = weight_n_classes(path, model)
    names = list(class_names)
    if n_classes != len(names):
        raise ValueError(
            f"{os.fspath(path)}: the weights are for {n_classes} classes (upsample.W "
            f"{w_shape}, upsample.b {b_shape}) but {dataset_name} has {len(names)} classes "
            f"{names}")
    return n_classes


def predict_function(net, input_var, device="cpu"):
    """Compiled ``f(X) -> probabilities (B, C, H, W)``, deterministic (no dropout)."""
    probs = get_output(net["probs_dimshuffle"], deterministic=True)
    return compiling.function([input_var], probs, device=device)


def predict_labels(predict, image):
    """Label map (H, W) and probabilities (C, H, W) for one (3, H, W) image."""
    probabilities = predict(image[None].astype(np.float32))[0]
    return probabilities.argmax(axis=0).astype(np.int32), probabilities


#: What :func:`predict_images` and :func:`evaluate` do with an image that cannot be used.
ON_ERROR = ("fail", "skip")

#: The errors that reading or checking one image raises (unreadable, truncated, too small,
#: a mode that is not 8-bit, a label map that does not match): the ones ``on_error='skip'``
#: skips. Anything else (a full disk, an interrupt) always stops the loop.
_IMAGE_ERRORS = (ValueError, OSError)


def _check_on_error(on_error):
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def _progress_bar(iterable, progress, desc, total=None):
    """A tqdm bar over ``iterable``: ``progress`` True (shown when stderr is a terminal),
    False (never shown)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=None if progress else True,
                unit="image")


def evaluate(predict, dataset, progress=False, on_error="fail", on_skip=None,
             check_size=check_input_size):
    """Confusion matrix of ``predict`` over every image of ``dataset``, one image at a time.

    The dataset reads its pairs on demand (:class:`fcn8_lasagne.data.SegmentationDataset`),
    so one image and its label map are in memory at a time, whatever the split's size.

    Parameters
    ----------
    predict : callable
        ``predict(X) -> probabilities (B, C, H, W)`` (:func:`predict_function`).
    dataset : SegmentationDataset
    progress : bool
        Show a tqdm bar when stderr is a terminal.
    on_error : {'fail', 'skip'}
        What a pair that cannot be read or is below the networks' minimum input does:
        raise (``ValueError`` / ``OSError`` naming the file), or be left out of the matrix,
        with ``on_skip(message)`` called.
    on_skip : callable, optional
        Called with one line naming the file and the reason for every skipped pair.
    check_size : callable or None
        ``check_size(height, width, what)`` raises for an image the network cannot take
        (default: FCN-8/16/32's minimum); ``None`` checks nothing (the ResNet FCNs take any
        size).

    Returns
    -------
    ConfusionMatrix
    """
    _check_on_error(on_error)
    confusion = ConfusionMatrix(dataset.n_classes, void_label=dataset.void_label)
    paths = getattr(dataset, "image_paths", None)
    for index in _progress_bar(range(len(dataset)), progress, "evaluate", len(dataset)):
        name = os.fspath(paths[index]) if paths is not None else f"image {index}"
        try:
            image, label = dataset[index]
            if check_size is not None:
                check_size(image.shape[1], image.shape[2], f"image {name}")
        except _IMAGE_ERRORS as error:
            if on_error == "fail":
                raise
            if on_skip is not None:
                on_skip(f"skipped {name}: {error}")
            continue
        predicted, _ = predict_labels(predict, image)
        confusion.update(predicted, label)
    return confusion


#: The file names :func:`iter_image_files` takes from a folder (case-insensitive).
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")


def iter_image_files(paths, suffixes=IMAGE_SUFFIXES):
    """Yield the image files named by ``paths``, lazily.

    A file is yielded as given; a folder is listed only when the iteration reaches it, and
    its files with one of ``suffixes`` are yielded in sorted order (its names, not its
    images, are held while it is yielded). A path that does not exist raises
    ``ValueError`` when it is reached.
    """
    suffixes = {suffix.lower() for suffix in suffixes}
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            names = sorted(entry.name for entry in os.scandir(path)
                           if os.path.splitext(entry.name)[1].lower() in suffixes)
            for name in names:
                yield os.path.join(path, name)
        elif os.path.exists(path):
            yield path
        else:
            raise ValueError(f"IMAGES: no such file or folder: {path}")


def _output_paths(path, out):
    stem = os.path.splitext(os.path.basename(path))[0]
    return (os.path.join(out, f"{stem}_labels.png"), os.path.join(out, f"{stem}_overlay.png"))


def predict_images(predict, paths, out, n_classes, window=4, on_error="fail", on_skip=None,
                   log=None, progress=False, total=None, size=None):
    """Read, predict and write the label PNG and overlay of each image, streaming.

    At most ``window`` images are in memory at a time: they are read, the ones of equal
    size are predicted in one batch, their ``<stem>_labels.png`` and ``<stem>_overlay.png``
    are written to ``out`` (atomically, :func:`save_png`), and the next window is read.
    ``paths`` may be a generator (:func:`iter_image_files`); it is consumed once.

    Parameters
    ----------
    predict : callable
        ``predict(X) -> probabilities (B, C, H, W)`` (:func:`predict_function`).
    paths : iterable of str
    out : str
        Output folder (made when missing).
    n_classes : int
    window : int, default 4
        Images held (and batched) at a time.
    on_error : {'fail', 'skip'}
        What an image that cannot be read (unreadable, truncated, below the networks'
        minimum input, not 8-bit) does: raise ``ValueError`` / ``OSError`` naming it (the
        outputs of the images before it are written, none after), or be skipped with
        ``on_skip(message)`` called. Errors writing the outputs always raise.
    on_skip : callable, optional
        Called with one line naming the file and the reason for every skipped image.
    log : callable, optional
        Called with one line per image written (its size and pixels per class).
    progress : bool
        Show a tqdm bar when stderr is a terminal.
    total : int, optional
        The image count, for the bar.
    size : (int, int), optional
        Resize every image to (H, W) (:func:`read_image`).

    Returns
    -------
    written, skipped : int
        Images predicted and images skipped.
    """
    _check_on_error(on_error)
    if int(window) < 1:
        raise ValueError(f"window must be a positive image count, got {window}")
    window = int(window)
    written = skipped = 0
    held = []
    bar = _progress_bar(paths, progress, "predict", total)
    try:
        for path in bar:
            try:
                held.append((path, read_image(path, size)))
            except _IMAGE_ERRORS as error:
                if on_error == "fail":  # the images read before it are written first
                    written += _predict_window(predict, held, out, n_classes, log)
                    held = []
                    raise
                skipped += 1
                if on_skip is not None:
                    on_skip(f"skipped {path}: {error}")
            if len(held) == window:
                written += _predict_window(predict, held, out, n_classes, log)
                held = []
        if held:
            written += _predict_window(predict, held, out, n_classes, log)
    finally:
        bar.close()
    return written, skipped


def _predict_window(predict, held, out, n_classes, log):
    """Predict the (path, image) pairs of one window (a batch per image size), write them."""
    by_shape = {}
    for path, image in held:
        by_shape.setdefault(image.shape, []).append((path, image))
    labels_of = {}
    for group in by_shape.values():
        batch = np.stack([image for _, image in group]).astype(np.float32, copy=False)
        labels = predict(batch).argmax(axis=1).astype(np.int32)
        for (path, _), label in zip(group, labels):
            labels_of[path] = label
    for path, image in held:  # written in the order read
        labels = labels_of[path]
        labels_png, overlay_png = _output_paths(path, out)
        save_png(labels.astype(np.uint8), labels_png)
        save_png(overlay(image, labels, n_classes), overlay_png)
        if log is not None:
            counts = np.bincount(labels.ravel(), minlength=n_classes)
            log(f"{path}: {labels.shape[0]}x{labels.shape[1]}, pixels per class "
                f"{counts.tolist()}")
    return len(held)


def activation_function(net, input_var, layers=None, device="cpu"):
    """Compiled ``f(X) -> [outputs]`` of the named layers (all with outputs by default).

    Returns
    -------
    names : list of str
    function : callable
    """
    if layers is None:
        layers = [name for name in net if name not in ("input", "input_tmp")]
    unknown = [name for name in layers if name not in net]
    if unknown:
        raise KeyError(f"unknown layer(s) {unknown}; the network has {list(net)}")
    outputs = get_output([net[name] for name in layers], deterministic=True)
    return list(layers), compiling.function([input_var], outputs, device=device)


def dump_activations(net, input_var, image, out_path, layers=None, device="cpu"):
    """Write the named layers' outputs for one image to ``out_path`` (``.npz``).

    The file holds one array per layer, keyed by layer name, plus ``input`` (the (1, 3, H, W)
    batch that was fed) — the format ``notebooks/02_compare_layer_outputs.ipynb`` reads and
    ``weights/dump_theano_activations.py`` writes from the original stack.
    """
    names, function = activation_function(net, input_var, layers, device)
    batch = image[None].astype(np.float32)
    arrays = dict(zip(names, function(batch)))
    arrays["input"] = batch
    atomic_savez(out_path, **arrays)
    return arrays


def read_image(path, size=None, notes=None, check_size=True):
    """An RGB image file as float32 (3, H, W) in [0, 1], optionally resized to (H, W).

    Grey-level, palette and RGBA files are converted (see
    :func:`fcn8_lasagne.data.read_rgb_image`; a sentence per conversion goes to ``notes``
    when it is a list). With ``check_size``, an image (after resizing) smaller than the
    networks' minimum input raises ``ValueError`` naming the file.
    """
    if size is not None and check_size:
        check_input_size(*size, f"--size {size[0]} {size[1]}")
    pixels = read_rgb_image(path, notes=notes)
    if size is not None:
        from PIL import Image

        resized = Image.fromarray(pixels).resize((size[1], size[0]), Image.BILINEAR)
        pixels = np.asarray(resized)
    if check_size:
        check_input_size(pixels.shape[0], pixels.shape[1], f"image {os.fspath(path)}")
    return pixels.astype(np.float32).transpose(2, 0, 1) / 255.0


def label_colors(n_classes):
    """A distinct RGB colour per class (uint8, (n_classes, 3)); class 0 is black."""
    return _label_colors(int(n_classes)).copy()


@functools.lru_cache(maxsize=8)
def _label_colors(n_classes):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n_classes <= 10 else "tab20"]
    colors = (np.array([cmap(k % cmap.N)[:3] for k in range(n_classes)]) * 255).astype(np.uint8)
    colors[0] = 0
    return colors


def overlay(image, labels, n_classes, alpha=0.5):
    """Blend class colours over a (3, H, W) [0, 1] image; returns uint8 (H, W, 3)."""
    rgb = np.clip(image.transpose(1, 2, 0), 0, 1) * 255
    colored = _label_colors(int(n_classes))[labels].astype(np.float32)
    mask = (labels > 0)[..., None]
    blended = np.where(mask, (1 - alpha) * rgb + alpha * colored, rgb)
    return blended.astype(np.uint8)


def save_png(array, path):
    """Write a uint8 array as PNG atomically (:func:`fcn8_lasagne.files.atomic_write`)."""
    from PIL import Image

    atomic_write(path, lambda stream: Image.fromarray(array).save(stream, format="PNG"),
                 suffix=".png")
