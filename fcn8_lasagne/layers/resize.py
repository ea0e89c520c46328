"""Bilinear resizing of feature maps to another layer's size or to a fixed size (ours).

:class:`BilinearResizeLayer` is not a Lasagne layer: Lasagne upsampled with
``Upscale2DLayer`` (repetition) or a transposed convolution only. It wraps
:func:`fcn8_lasagne.ops.bilinear_resize`, with MXNet's / Gluon-CV's ``BilinearResize2D``
corners (``align_corners=True``) or PyTorch's ``F.interpolate(mode='bilinear',
align_corners=False)`` pixel centres. The one rule to know: with ``size_from`` the target
size is *the reference layer's output* (e.g. the network's input layer), passed to the op as
a reference tensor, so one compiled function -- JAX included -- serves every input size.
"""

from ..ops import bilinear_resize
from ..utils import as_tuple, int_types
from .base import MergeLayer

__all__ = ["BilinearResizeLayer"]


class BilinearResizeLayer(MergeLayer):
    """Resize the last two axes of a (B, C, H, W) input bilinearly (not in Lasagne).

    Parameters
    ----------
    incoming : Layer or tuple
        The maps to resize, 4-D.
    size_from : Layer or tuple, optional
        A layer whose output's last two axes give the target (H', W') -- typically the
        network's input layer, so scores come back at the image size. Exactly one of
        ``size_from`` and ``size`` is given.
    size : int or (int, int), optional
        A fixed target size.
    align_corners : bool, default False
        ``True``: ``src = dst * (in - 1) / (out - 1)`` (MXNet ``BilinearResize2D``,
        Gluon-CV); ``False``: ``src = (dst + 0.5) * in / out - 0.5`` clamped at 0
        (PyTorch's default for ``F.interpolate(mode='bilinear')``, torchvision).
    **kwargs
        ``name``.

    Notes
    -----
    With ``size_from`` the layer is a :class:`MergeLayer` of ``[incoming, size_from]``; the
    reference's values are never read (only its shape), so no gradient flows into it.
    """

    def __init__(self, incoming, size_from=None, size=None, align_corners=False, **kwargs):
        label = f"BilinearResizeLayer {kwargs.get('name')!r}" if kwargs.get("name") \
            else "BilinearResizeLayer"
        if (size_from is None) == (size is None):
            raise ValueError(f"{label}: give exactly one of size_from (a reference layer) "
                             f"and size (a fixed (H, W)), got size_from={size_from!r}, "
                             f"size={size!r}")
        incomings = [incoming] if size_from is None else [incoming, size_from]
        super().__init__(incomings, **kwargs)
        if len(self.input_shapes[0]) != 4:
            raise ValueError(f"{label}: expected a 4-D (batch, channels, rows, columns) "
                             f"input, got shape {self.input_shapes[0]!r}")
        if size_from is not None and len(self.input_shapes[1]) != 4:
            raise ValueError(f"{label}: size_from must be a 4-D layer (its last two axes "
                             f"give the size), got shape {self.input_shapes[1]!r}")
        if size is not None:
            size = as_tuple(size, 2, int_types)
            if any(s < 1 for s in size):
                raise ValueError(f"{label}: size must be positive, got {size!r}")
        self.size = size
        self.align_corners = bool(align_corners)

    def get_output_shape_for(self, input_shapes):
        spatial = self.size if self.size is not None else tuple(input_shapes[1][2:])
        return tuple(input_shapes[0][:2]) + tuple(spatial)

    def get_output_for(self, inputs, **kwargs):
        target = self.size if self.size is not None else inputs[1]
        return bilinear_resize(inputs[0], target, self.align_corners)
