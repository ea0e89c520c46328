"""MatConvNet DagNN models (``.mat``), the tutorial's ``pascal=True`` weights.

A DagNN saved with ``dagnn.DagNN.saveobj`` holds a struct array ``params`` with fields
``name`` and ``value`` (plus learning-rate fields, ignored). MatConvNet arrays are
column-major with the spatial axes first:

- convolution filters are ``(kh, kw, in, out)`` and transposed-convolution filters
  ``(kh, kw, out, in)``; ``np.swapaxes(value.T, 2, 3)`` gives ``(out, in, kh, kw)``
  and ``(in, out, kh, kw)``, the layouts of our ``Conv2DLayer`` and
  ``TransposedConv2DLayer``. MatConvNet's ``vl_nnconv`` is a cross-correlation;
- biases are vectors (``(n, 1)`` or ``(1, n)``).

Parameter names are the layer name plus a suffix: ``f`` / ``b`` in the tutorial's
``pascal-fcn8s-tvg-dag.mat`` (``conv1_1f``, ``conv1_1b``), ``_filter`` / ``_bias`` in
MatConvNet's own FCN conversions (``conv1_1_filter``).

As in the original tutorial, layers whose name contains ``score``, ``upsample``, ``final``
or ``probs`` are skipped by default, so only the VGG body (``conv1_1`` ... ``fc7``) is
loaded and the classifier keeps its own number of classes.

The reading itself (:func:`read_matconvnet_params`, :func:`matconvnet_to_fcn`) lives in
:mod:`fcn8_lasagne.files`, which the model builders' ``pascal=True`` also use; this module
adds loading into a network with the validate-then-set rule of :func:`assign_params`.
"""

import os

from ..files import TUTORIAL_SKIPPED, matconvnet_to_fcn, read_matconvnet_params
from .assign import assign_params

__all__ = ["TUTORIAL_SKIPPED", "read_matconvnet_params", "matconvnet_to_fcn", "load_matconvnet"]

def load_matconvnet(net, path, skip=TUTORIAL_SKIPPED, strict=True, allow_nonfinite=False):
    """Load a MatConvNet DagNN ``.mat`` model (e.g. ``pascal-fcn8s-tvg-dag.mat``).

    Parameters
    ----------
    net : dict
        Layer name to layer (``buildFCN8`` and siblings).
    path : str or os.PathLike
    skip : sequence of str
        Layers whose name contains one of these substrings are not loaded. The default is
        the original tutorial's; pass ``()`` to load the score and upsampling layers too
        (their shapes must then match ``net``, i.e. the same number of classes).
    strict : bool
        When true, a loaded layer missing from ``net`` is an error; else it is skipped.
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default an error, as are non-float dtypes).

    Returns
    -------
    list of str
        The layers of ``net`` that were set.

    Raises
    ------
    WeightLoadError
        On an unreadable file, an unknown layer or a shape mismatch; ``net`` is then
        unchanged.
    """
    source = os.fspath(path)
    values = matconvnet_to_fcn(read_matconvnet_params(path), source, skip=skip)
    return assign_params(net, values, source, convention="cross_correlation", strict=strict,
                         allow_nonfinite=allow_nonfinite)
