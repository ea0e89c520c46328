"""Compare the named layer outputs of two sources of FCN activations, layer by layer.

A *source* is a mapping of layer name → array: what
:func:`fcn8_lasagne.inference.dump_activations` returns, a ``.npz`` file in the same format (one
array per layer name plus ``input``, written by ``fcn8 dump-activations`` or by
``weights/dump_theano_activations.py`` from the original Theano stack), or the output of
:func:`numpy_fcn_forward`.

* :func:`compare_activations` gives one :class:`ComparisonRow` per layer: shapes, largest
  absolute error, largest relative error (the largest absolute error divided by the largest
  magnitude of the reference layer) and whether the layer matches within the tolerance.
* :func:`format_comparison` prints the rows as a table, :func:`verdict` sums them up in one
  line.
* :func:`numpy_fcn_forward` is an independent forward pass of the tutorial's FCN-8/16/32 in
  plain NumPy (float64 by default), written from the tutorial's layer list (``fcn8.py``) and
  the rules of Lasagne 0.2's layers — it uses nothing of this package's ops or layers, so
  agreeing with it is evidence that they compute what the tutorial computed.

``notebooks/02_compare_layer_outputs.ipynb`` uses all of them.
"""

import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ComparisonRow",
    "NON_LAYER_KEYS",
    "load_activations",
    "compare_activations",
    "format_comparison",
    "verdict",
    "numpy_fcn_forward",
]

#: Keys of an activation file that are not layer outputs (the fed batch); left out of a
#: comparison unless named in ``layers``.
NON_LAYER_KEYS = ("input",)


@dataclass
class ComparisonRow:
    """How one layer's output differs between a reference and a candidate.

    Attributes
    ----------
    layer : str
    reference_shape, candidate_shape : tuple or None
        ``None`` when the source has no such layer.
    max_abs_error : float
        Largest ``|candidate - reference|``; ``nan`` when the layer cannot be compared.
        Positions where both are NaN, or both the same infinity, count as equal; any other
        non-finite difference makes it ``inf``.
    max_rel_error : float
        ``max_abs_error / max |reference|`` (over the finite reference values); 0 when both
        are zero, ``inf`` when only the reference is all zero.
    ok : bool
        Shapes agree and ``max_abs_error <= atol + rtol * max |reference|``.
    rtol, atol : float
        The tolerances the row was judged with.
    problem : str
        Why the row fails when it cannot be compared ("missing in candidate", "shape
        mismatch"); empty otherwise.
    """

    layer: str
    reference_shape: tuple
    candidate_shape: tuple
    max_abs_error: float
    max_rel_error: float
    ok: bool
    rtol: float
    atol: float = 0.0
    problem: str = ""


def load_activations(source):
    """A source of activations as an ordered dict of name → NumPy array.

    Parameters
    ----------
    source : mapping or str or path-like
        A mapping of name → array (returned as a dict, arrays converted with
        :func:`numpy.asarray`), or the path of a ``.npz`` file (read fully, pickles refused).

    Returns
    -------
    OrderedDict
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        with np.load(source, allow_pickle=False) as archive:
            return OrderedDict((name, archive[name]) for name in archive.files)
    return OrderedDict((name, np.asarray(value)) for name, value in source.items())


def _errors(reference, candidate):
    """Largest absolute difference and largest finite reference magnitude, in float64."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.size == 0:
        return 0.0, 0.0
    same = (reference == candidate) | (np.isnan(reference) & np.isnan(candidate))
    with np.errstate(invalid="ignore"):
        difference = np.where(same, 0.0, np.abs(candidate - reference))
    difference = np.where(np.isnan(difference), np.inf, difference)
    finite_reference = np.abs(reference[np.isfinite(reference)])
    scale = float(finite_reference.max()) if finite_reference.size else 0.0
    return float(difference.max()), scale


def _relative(max_abs_error, scale):
    if max_abs_error == 0.0:
        return 0.0
    return max_abs_error / scale if scale > 0 else np.inf


def compare_activations(reference, candidate, layers=None, rtol=1e-4, atol=0.0):
    """Compare the outputs of every layer between two sources.

    Parameters
    ----------
    reference, candidate : mapping or path
        See :func:`load_activations`. Relative errors are measured against ``reference``.
    layers : list of str, optional
        The layers to compare, in this order. By default every key of ``reference`` (in
        its order) then the keys only ``candidate`` has, without :data:`NON_LAYER_KEYS`.
    rtol : float, default 1e-4
        A layer matches when its largest absolute error is at most
        ``atol + rtol * max |reference layer|``.
    atol : float, default 0.0
        Absolute slack, for layers whose reference is (nearly) all zero.

    Returns
    -------
    list of ComparisonRow
        One per layer. A layer missing from either source, or with different shapes, is a
        failing row with ``nan`` errors.
    """
    reference = load_activations(reference)
    candidate = load_activations(candidate)
    if layers is None:
        names = list(reference) + [name for name in candidate if name not in reference]
        layers = [name for name in names if name not in NON_LAYER_KEYS]
    rows = []
    for name in layers:
        reference_value = reference.get(name)
        candidate_value = candidate.get(name)
        reference_shape = None if reference_value is None else tuple(reference_value.shape)
        candidate_shape = None if candidate_value is None else tuple(candidate_value.shape)
        problem = ""
        if reference_value is None and candidate_value is None:
            problem = "missing in both"
        elif reference_value is None:
            problem = "missing in reference"
        elif candidate_value is None:
            problem = "missing in candidate"
        elif reference_shape != candidate_shape:
            problem = "shape mismatch"
        if problem:
            rows.append(ComparisonRow(name, reference_shape, candidate_shape, np.nan, np.nan,
                                      False, rtol, atol, problem))
            continue
        max_abs_error, scale = _errors(reference_value, candidate_value)
        ok = bool(max_abs_error <= atol + rtol * scale)
        rows.append(ComparisonRow(name, reference_shape, candidate_shape, max_abs_error,
                                  _relative(max_abs_error, scale), ok, rtol, atol))
    return rows


def _shape_text(shape):
    return "-" if shape is None else "x".join(str(length) for length in shape)


def format_comparison(rows):
    """The rows as a text table: layer, shape(s), max abs error, max rel error, status.

    Parameters
    ----------
    rows : list of ComparisonRow

    Returns
    -------
    str
    """
    lines = [f"{'layer':<18}{'shape':<30}{'max abs error':>15}{'max rel error':>15}  status"]
    for row in rows:
        if row.reference_shape == row.candidate_shape:
            shape = _shape_text(row.reference_shape)
        else:
            shape = f"{_shape_text(row.reference_shape)} vs {_shape_text(row.candidate_shape)}"
        status = row.problem.upper() if row.problem else ("ok" if row.ok else "DIFFERS")
        lines.append(f"{row.layer:<18}{shape:<30}{row.max_abs_error:>15.3e}"
                     f"{row.max_rel_error:>15.3e}  {status}")
    return "\n".join(lines)


def _tolerance_text(rows):
    rtols = sorted({row.rtol for row in rows})
    atols = sorted({row.atol for row in rows})
    text = "rtol " + "/".join(f"{rtol:g}" for rtol in rtols)
    if any(atol > 0 for atol in atols):
        text += ", atol " + "/".join(f"{atol:g}" for atol in atols)
    return text


def verdict(rows):
    """One line summing up a comparison.

    Parameters
    ----------
    rows : list of ComparisonRow

    Returns
    -------
    str
        ``"all N layers match within rtol R (largest relative error E at LAYER)"`` when every
        row is ok, otherwise ``"K of N layers differ (rtol R): LAYER (rel E), …"`` naming each
        failing layer in order, with its relative error or its problem; ``"no layers
        compared"`` for no rows.
    """
    if not rows:
        return "no layers compared"
    tolerance = _tolerance_text(rows)
    failing = [row for row in rows if not row.ok]
    if not failing:
        worst = max(rows, key=lambda row: row.max_rel_error)
        return (f"all {len(rows)} layers match within {tolerance} (largest relative error "
                f"{worst.max_rel_error:.2e} at {worst.layer})")
    reasons = [f"{row.layer} ({row.problem})" if row.problem
               else f"{row.layer} (rel {row.max_rel_error:.2e})" for row in failing]
    return f"{len(failing)} of {len(rows)} layers differ ({tolerance}): " + ", ".join(reasons)


# --- An independent forward pass of the tutorial's FCN in NumPy --------------------------
#
# Written from the tutorial's layer list and Lasagne's documented rules (see the module
# docstring), not from this package's layers: every convolution is a sum over kernel
# positions of a matrix product, every crop an explicit slice.


def _correlate(images, weights, bias, padding):
    """Cross-correlation (Lasagne's ``flip_filters=False``), stride 1, zero padding.

    ``images`` (B, C, H, W), ``weights`` (F, C, kh, kw), ``bias`` (F,) → (B, F, H', W') with
    ``H' = H + 2 * padding - kh + 1``.
    """
    n_filters, _, kernel_height, kernel_width = weights.shape
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_height = padded.shape[2] - kernel_height + 1
    out_width = padded.shape[3] - kernel_width + 1
    result = np.zeros((images.shape[0], out_height, out_width, n_filters), dtype=images.dtype)
    for row in range(kernel_height):
        for column in range(kernel_width):
            window = padded[:, :, row:row + out_height, column:column + out_width]
            # (B, C, H', W') · (F, C) over C → (B, H', W', F)
            result += np.tensordot(window, weights[:, :, row, column], axes=([1], [1]))
    return result.transpose(0, 3, 1, 2) + bias[None, :, None, None]


def _transposed_convolution(images, weights, bias, stride):
    """Lasagne's ``Deconv2DLayer`` with ``crop='valid'`` and ``flip_filters=False``.

    ``images`` (B, C, H, W), ``weights`` (C, F, k, k) → (B, F, (H - 1) * stride + k, …):
    each input pixel adds its value times the kernel rotated by 180° at ``stride`` times its
    position.
    """
    rotated = weights[:, :, ::-1, ::-1]
    _, n_filters, kernel_height, kernel_width = weights.shape
    batch, _, height, width = images.shape
    out_height = (height - 1) * stride + kernel_height
    out_width = (width - 1) * stride + kernel_width
    result = np.zeros((batch, out_height, out_width, n_filters), dtype=images.dtype)
    for row in range(kernel_height):
        for column in range(kernel_width):
            # (B, C, H, W) · (C, F) over C → (B, H, W, F), placed on a stride grid
            contribution = np.tensordot(images, rotated[:, :, row, column], axes=([1], [0]))
            result[:, row:row + stride * (height - 1) + 1:stride,
                   column:column + stride * (width - 1) + 1:stride] += contribution
    return result.transpose(0, 3, 1, 2) + bias[None, :, None, None]


def _max_pool_2x2(images):
    """2x2 max pooling, stride 2, a trailing odd row or column dropped (``ignore_border``)."""
    batch, channels, height, width = images.shape
    kept = images[:, :, :height // 2 * 2, :width // 2 * 2]
    return kept.reshape(batch, channels, height // 2, 2, width // 2, 2).max(axis=(3, 5))


def _center_crop(images, height, width):
    """The centre ``height`` x ``width`` of (B, C, H, W) images: offset ``(H - height) // 2``."""
    top = (images.shape[2] - height) // 2
    left = (images.shape[3] - width) // 2
    return images[:, :, top:top + height, left:left + width]


def _center_crop_to_smallest(*images):
    """Every array centre-cropped to the smallest height and width among them."""
    height = min(image.shape[2] for image in images)
    width = min(image.shape[3] for image in images)
    return [_center_crop(image, height, width) for image in images]


def _relu(values):
    return np.maximum(values, 0)


def _softmax_rows(values):
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


#: VGG16 blocks of the FCN body: (block number, convolutions in the block).
_VGG16_BLOCKS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))

#: Number of parameter arrays of each model (W and b per layer), in Lasagne's order.
_PARAMETER_COUNTS = {"fcn8": 42, "fcn16": 38, "fcn32": 34}


def numpy_fcn_forward(images, params, model="fcn8", dtype=np.float64):
    """The tutorial's FCN-8/16/32 at test time (dropout off), in plain NumPy.

    Parameters
    ----------
    images : array_like, (B, C, H, W)
    params : list of array_like
        The parameter values in Lasagne's ``get_all_params`` order, as in a tutorial
        ``.npz`` (``arr_0 …``): ``conv1_1.W, conv1_1.b, …, upsample.W, upsample.b``.
    model : {'fcn8', 'fcn16', 'fcn32'}
    dtype : numpy dtype, default float64
        The precision of the whole computation.

    Returns
    -------
    OrderedDict
        Layer name → output for every layer of the builder's net dict except ``input_tmp``
        (``input`` is the batch itself), in the builder's order, in ``dtype``.

    Notes
    -----
    The rules encoded here: ``conv1_1`` pads 100, the other 3x3 convolutions pad 1; VGG
    layers, ``fc6``, ``fc7`` and ``score_fr`` are cross-correlations, ``score_pool4`` and
    ``score_pool3`` true convolutions (the same thing at 1x1); every convolution, the score
    layers included, is followed by a ReLU; pools are 2x2 max with floor; deconvolutions
    (``score2``, ``score4`` 4x4 stride 2, ``upsample`` 16x16 stride 8 for FCN-8, 32/16 for
    FCN-16, 64/32 for FCN-32) have no crop and no nonlinearity; skip sums centre-crop both
    inputs to the smaller one; ``score`` centre-crops ``upsample`` to the image; the output
    head is dimshuffle (0, 2, 3, 1), reshape to (B·H·W, classes), row softmax, reshape back
    and dimshuffle (0, 3, 1, 2).
    """
    if model not in _PARAMETER_COUNTS:
        raise ValueError(f"unknown model {model!r}; expected one of {list(_PARAMETER_COUNTS)}")
    if len(params) != _PARAMETER_COUNTS[model]:
        raise ValueError(f"{model} has {_PARAMETER_COUNTS[model]} parameter arrays, got "
                         f"{len(params)}")
    # converted one at a time, when used: FCN-8 in float64 is over 1 GB
    next_params = (np.asarray(value, dtype=dtype) for value in params)
    outputs = OrderedDict(input=np.asarray(images, dtype=dtype))

    def convolution(name, source, padding, true_convolution=False):
        weights, bias = next(next_params), next(next_params)
        if true_convolution:
            weights = weights[:, :, ::-1, ::-1]
        outputs[name] = _relu(_correlate(outputs[source], weights, bias, padding))

    def deconvolution(name, source, stride):
        weights, bias = next(next_params), next(next_params)
        outputs[name] = _transposed_convolution(outputs[source], weights, bias, stride)

    def skip_sum(name, first, second):
        cropped_first, cropped_second = _center_crop_to_smallest(outputs[first], outputs[second])
        outputs[name] = cropped_first + cropped_second

    previous = "input"
    for block, n_convolutions in _VGG16_BLOCKS:
        for index in range(1, n_convolutions + 1):
            name = f"conv{block}_{index}"
            convolution(name, previous, 100 if name == "conv1_1" else 1)
            previous = name
        outputs[f"pool{block}"] = _max_pool_2x2(outputs[previous])
        previous = f"pool{block}"
    convolution("fc6", "pool5", 0)
    outputs["fc6_dropout"] = outputs["fc6"]
    convolution("fc7", "fc6_dropout", 0)
    outputs["fc7_dropout"] = outputs["fc7"]
    convolution("score_fr", "fc7_dropout", 0)
    if model == "fcn32":
        deconvolution("upsample", "score_fr", 32)
    else:
        deconvolution("score2", "score_fr", 2)
        convolution("score_pool4", "pool4", 0, true_convolution=True)
        skip_sum("score_fused", "score2", "score_pool4")
        if model == "fcn16":
            deconvolution("upsample", "score_fused", 16)
        else:
            deconvolution("score4", "score_fused", 2)
            convolution("score_pool3", "pool3", 0, true_convolution=True)
            skip_sum("score_final", "score4", "score_pool3")
            deconvolution("upsample", "score_final", 8)
    image = outputs["input"]
    # `input_tmp` is the image, used for its size only: the merge keeps the cropped upsample
    _, outputs["score"] = _center_crop_to_smallest(image, outputs["upsample"])
    batch, n_classes, height, width = outputs["score"].shape
    outputs["final_dimshuffle"] = outputs["score"].transpose(0, 2, 3, 1)
    outputs["final_reshape"] = outputs["final_dimshuffle"].reshape(-1, n_classes)
    outputs["probs"] = _softmax_rows(outputs["final_reshape"])
    outputs["probs_reshape"] = outputs["probs"].reshape(batch, height, width, n_classes)
    outputs["probs_dimshuffle"] = outputs["probs_reshape"].transpose(0, 3, 1, 2)
    return outputs
