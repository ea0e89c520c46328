"""Sums over every axis but one (bias gradients), shared out to the worker threads.

The gradient of ``x + b.dimshuffle('x', 0, 'x', 'x')`` with respect to ``b`` is a ``Sum``
of the output gradient over axes (0, 2, 3), accumulated in float64 for float32 values (as
Theano did). PyTensor's C loop for it reads the array with strides at about 3 ns a value
(68 ms for FCN-8's ``conv1_2`` output at batch 2), where NumPy's float64-accumulated sum
takes 13 ms on one core. :class:`AxisSum` computes that same sum with NumPy on blocks of
the kept axis in the convolution worker threads, and the rewrite :func:`local_axis_sum`
puts it in place of such ``Sum`` nodes in graphs compiled for the CPU by
:func:`fcn8_lasagne.compile.function` (the rewrite tag :data:`CPU_REWRITES`). The result
differs from PyTensor's only by the order of the float64 additions.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.tensor.math import Sum

from ._backend import register_numba_perform
from ._threads import parallel_for, spans, worker_count

__all__ = ["AxisSum", "axis_sum", "local_axis_sum", "CPU_REWRITES"]

#: Tag of the rewrites that ``fcn8_lasagne.compile.function(device='cpu')`` includes.
CPU_REWRITES = "fcn8_lasagne_cpu"


class AxisSum(Op):
    """Sum of ``x`` over every axis except ``axis``, accumulated in ``acc_dtype``.

    Parameters
    ----------
    axis : int
        The axis that is kept (non-negative).
    dtype, acc_dtype : str
        Dtype of the result and of the accumulator.
    """

    __props__ = ("axis", "dtype", "acc_dtype")

    def __init__(self, axis, dtype, acc_dtype):
        self.axis = int(axis)
        self.dtype = dtype
        self.acc_dtype = acc_dtype

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        if not 0 <= self.axis < x.type.ndim:
            raise ValueError(f"AxisSum: axis {self.axis} does not exist in a "
                             f"{x.type.ndim}-dimensional input")
        return Apply(self, [x], [pt.tensor(dtype=self.dtype, shape=(x.type.shape[self.axis],))])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        kept = np.moveaxis(x, self.axis, 0)
        others = tuple(range(1, x.ndim))
        out = np.empty(kept.shape[0], dtype=self.dtype)

        def add_up(span, _):
            start, stop = span
            out[start:stop] = kept[start:stop].sum(axis=others, dtype=self.acc_dtype)

        block = max(1, -(-kept.shape[0] // (2 * worker_count())))
        # Memory-bound: weigh each value as a few operations, so that sums of a few
        # million values go to the threads.
        parallel_for(spans(kept.shape[0], block), add_up, flops=8.0 * x.size)
        output_storage[0][0] = out

    def infer_shape(self, *args):
        # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        node, shapes = args[-2:]
        return [(shapes[0][self.axis],)]

    def pullback(self, inputs, outputs, output_grads):
        (x,), (gz,) = inputs, output_grads
        pattern = ["x"] * x.type.ndim
        pattern[self.axis] = 0
        return [pt.cast(pt.broadcast_to(gz.dimshuffle(pattern), x.shape), x.dtype)]

def axis_sum(x, axis, dtype=None, acc_dtype=None):
    """``x.sum(axis=<every axis but axis>)`` as one :class:`AxisSum` node.

    ``dtype`` defaults to ``x``'s, ``acc_dtype`` to float64 for floating-point ``x``.
    """
    x = pt.as_tensor_variable(x)
    dtype = dtype or x.dtype
    acc_dtype = acc_dtype or ("float64" if x.dtype.startswith("float") else x.dtype)
    return AxisSum(axis % x.type.ndim, dtype, acc_dtype)(x)


@node_rewriter([Sum])
def local_axis_sum(fgraph, node):
    """``Sum`` over every axis but one of a float array → :class:`AxisSum`."""
    (x,) = node.inputs
    ndim = x.type.ndim
    axes = tuple(range(ndim)) if node.op.axis is None else tuple(node.op.axis)
    if ndim < 2 or len(axes) != ndim - 1 or not x.dtype.startswith("float"):
        return None
    (kept,) = set(range(ndim)) - set(axes)
    out = node.outputs[0]
    return [AxisSum(kept, out.dtype, node.op.acc_dtype or out.dtype)(x)]


register_numba_perform(AxisSum)
# Not tagged fast_run: only the CPU mode of fcn8_lasagne.compile includes it.
optdb["specialize"].register("local_axis_sum", local_axis_sum, CPU_REWRITES)
