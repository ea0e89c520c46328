"""Alternatives to PyTensor/Theano operations that Lasagne ships (``lasagne.theano_extensions``).

* :mod:`.conv`: 1-D convolutions built from the 2-D convolution op or from dot products
  (``conv1d_sc``, ``conv1d_mc0`` (the default of :class:`~fcn8_lasagne.layers.Conv1DLayer`),
  ``conv1d_mc1``, ``conv1d_unstrided``, ``conv1d_sd``, ``conv1d_md``);
* :mod:`.padding`: :func:`~.padding.pad`, constant padding of a tensor's trailing axes.

They sit between :mod:`fcn8_lasagne.ops` and :mod:`fcn8_lasagne.layers`: they use the ops and
the layers use them.
"""

from . import conv, padding

__all__ = ["conv", "padding"]
