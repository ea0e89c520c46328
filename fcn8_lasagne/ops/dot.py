"""Matrix products on the CPU through the BLAS the convolution kernels use.

PyTensor installed from PyPI links to no BLAS, so its ``Dot22`` (every ``dot`` of two
matrices: dense layers, the LSTM's and GRU's input projections and their gradients) calls
``numpy.dot``, whose OpenBLAS is a second copy beside the one SciPy links and the kernels
here call (:mod:`._blas`). Each copy keeps its own threads, which spin for a while after a
call: on two cores, numpy's threads spinning after a product took the cores from the worker
threads of the next op, and an LSTM's forward+backward took 16 ms or 60-110 ms by chance
(16-20 ms every time with one OpenBLAS thread). :class:`BlasDot22` computes the product
with SciPy's OpenBLAS, whose threads :func:`._blas.single_threaded_blas` steers, so one set
of BLAS threads serves the whole function.

The rewrite :func:`local_blas_dot22` puts it in place of ``Dot22`` in graphs compiled for the
CPU by :func:`fcn8_lasagne.compile.function` (the rewrite tag
:data:`~fcn8_lasagne.ops.reduce.CPU_REWRITES`). To compile without it::

    mode = fcn8_lasagne.compile.mode_for_device("cpu").excluding("blas_dot22")
"""

import numpy as np
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.tensor.blas import Dot22

from ._blas import gemm
from .reduce import CPU_REWRITES

__all__ = ["BlasDot22", "local_blas_dot22"]


def _unit_stride_rows(matrix):
    """``(view, transposed)``: ``matrix`` or its transpose with unit stride along the last
    axis (a copy when neither has)."""
    if matrix.strides[1] == matrix.itemsize or matrix.shape[1] <= 1:
        return matrix, False
    if matrix.strides[0] == matrix.itemsize or matrix.shape[0] <= 1:
        return matrix.T, True
    return np.ascontiguousarray(matrix), False


class BlasDot22(Op):
    """``dot(a, b)`` of two matrices of one float dtype, with :func:`._blas.gemm`."""

    __props__ = ()

    def make_node(self, a, b):
        node = Dot22()(a, b).owner
        return Apply(self, node.inputs, [node.outputs[0].type()])

    def perform(self, node, inputs, output_storage):
        a, b = inputs
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"dot: shapes {a.shape} and {b.shape} do not align")
        out = np.empty((a.shape[0], b.shape[1]), dtype=node.outputs[0].type.dtype)
        (a, trans_a), (b, trans_b) = _unit_stride_rows(a), _unit_stride_rows(b)
        gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)
        output_storage[0][0] = out

    def infer_shape(self, *args):
        shapes = args[-1]  # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        return [(shapes[0][0], shapes[1][1])]

    def grad(self, inputs, output_grads):
        return Dot22().grad(inputs, output_grads)


@node_rewriter([Dot22])
def local_blas_dot22(fgraph, node):
    """``Dot22`` of float32 or float64 matrices → :class:`BlasDot22`."""
    if node.outputs[0].type.dtype not in ("float32", "float64"):
        return None
    if any(v.type.dtype != node.outputs[0].type.dtype for v in node.inputs):
        return None
    return [BlasDot22()(*node.inputs)]


# After PyTensor's BLAS rewrites (1.7, which make the Dot22 nodes) and the in-place ones.
optdb.register("blas_dot22", in2out(local_blas_dot22), CPU_REWRITES, position=70.5)
