"""PyTensor's elementwise expressions in compiled loops on the worker threads.

PyTensor fuses chains of elementwise operations into one ``Elemwise`` of a scalar
``Composite`` and compiles it into a C loop on one core, strided wherever an operand is
broadcast (a bias or a batch-norm scale per channel), with square roots and divisions in
scalar code. In the training steps here those loops took a large share of the time: a
U-Net step (batch norm and ELU after every convolution) ran 13.4 s with them and 9.8 s
with :class:`CompiledElemwise`, Adam's update of FCN-8's ``fc6.W`` (102.8M values) 0.43 s
and 0.15 s.

:class:`CompiledElemwise` computes the same expression with a loop compiled from the
scalar operation's own C code (:mod:`._elemwise_c`), so every value is the one PyTensor's
loop gives, bit for bit: it merges the axes that all operands step through evenly, shares
the rows (or, for few rows, the columns) out to the worker threads, and indexes contiguous
rows as plain arrays, which the compiler vectorises.

The rewrite :func:`local_compiled_elemwise` puts it in place of ``Elemwise`` nodes in graphs
compiled for the CPU by :func:`fcn8_lasagne.compile.function` (the rewrite tag
:data:`~fcn8_lasagne.ops.reduce.CPU_REWRITES`), after PyTensor's fusion and in-place
rewrites, where

* every scalar operation is plain arithmetic (:data:`._elemwise_c.SCALAR_OPS`: arithmetic,
  comparisons, switches, ``exp``/``expm1``/``log``/``tanh``, casts) on float, integer or
  bool values;
* the output has at least three dimensions (feature maps, convolution kernels), or the
  node updates shared variables in place (an optimiser's update of a parameter of any
  shape), or its static size is large. Smaller tensors stay with PyTensor's loop, whose call costs
  less than ``perform``'s; so do the inner graphs of ``scan``.

Without a C++ compiler, or with ``FCN8_LASAGNE_C_KERNELS=0``, nodes keep PyTensor's loop.
To compile without it::

    mode = fcn8_lasagne.compile.mode_for_device("cpu").excluding("compiled_elemwise")
"""

import ctypes
import math

import numpy as np
from pytensor.compile import SharedVariable, optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.tensor.elemwise import Elemwise

from . import _elemwise_c
from ._threads import parallel_for, spans, worker_count
from .reduce import CPU_REWRITES

__all__ = ["CompiledElemwise", "local_compiled_elemwise"]


class CompiledElemwise(Op):
    """An ``Elemwise``, computed by a compiled loop (:mod:`._elemwise_c`) on worker threads.

    The loop evaluates the scalar operation's own C code, as PyTensor's loop does, so every
    value is the same; it shares the rows (or, for few rows, the columns) of the output out
    to the worker threads, and vectorises rows whose operands are contiguous. PyTensor's
    loop is single-threaded, and for broadcast operands (a bias or a batch-norm scale per
    channel) strided. Same inputs, outputs, broadcasting rules and in-place pattern as the
    wrapped op.

    Parameters
    ----------
    elemwise : pytensor.tensor.elemwise.Elemwise
        Accepted by :func:`local_compiled_elemwise`.
    """

    __props__ = ("elemwise",)

    def __init__(self, elemwise):
        self.elemwise = elemwise
        self.destroy_map = dict(elemwise.destroy_map)
        self._kernels = {}

    def make_node(self, *inputs):
        node = self.elemwise.make_node(*inputs)
        return Apply(self, node.inputs, [output.type() for output in node.outputs])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_kernels"] = {}  # ctypes functions do not pickle; rebuilt from the cache
        return state

    def kernel(self, node):
        """The compiled loop for ``node`` (None if it could not be built)."""
        key = tuple(v.type for v in node.inputs + node.outputs)
        if key not in self._kernels:
            self._kernels[key] = _elemwise_c.kernel(
                self.elemwise.scalar_op, [v.type.dtype for v in node.inputs],
                [v.type.dtype for v in node.outputs],
                [v.type.broadcastable[-1] for v in node.inputs])
        return self._kernels[key]

    def perform(self, node, inputs, output_storage):
        shape = _output_shape(node, inputs)
        inputs = [x if all(s % x.itemsize == 0 for s in x.strides)
                  else np.ascontiguousarray(x) for x in inputs]
        outputs = []
        for k, output in enumerate(node.outputs):
            if k in self.destroy_map:
                outputs.append(inputs[self.destroy_map[k][0]])
            else:
                outputs.append(np.empty(shape, dtype=output.type.dtype))
        size = math.prod(shape)
        if size:
            self._run(node, shape, inputs, outputs, size)
        for k, output in enumerate(outputs):
            output_storage[k][0] = output

    def _run(self, node, shape, inputs, outputs, size):
        operands = inputs + outputs
        shape, strides = _elemwise_c.collapse(
            shape, [_elemwise_c.element_strides(a, shape) for a in operands])
        broadcast_last = [v.type.broadcastable[-1] for v in node.inputs] + [False] * len(outputs)
        fast = all(s[-1] == (0 if b else 1) for s, b in zip(strides, broadcast_last))
        outer, inner = len(shape) - 1, shape[-1]
        rows = math.prod(shape[:-1])
        shape_array = np.asarray(shape, dtype=np.int64)
        stride_array = np.asarray(strides, dtype=np.int64)
        base = (ctypes.c_void_p * len(operands))(*[a.ctypes.data for a in operands])
        run = self.kernel(node)
        pieces = 1 if size < _PARALLEL_SIZE else 4 * worker_count()

        def compute(task, _):
            (r0, r1), (c0, c1) = task
            run(r0, r1, c0, c1, outer, shape_array.ctypes.data, stride_array.ctypes.data,
                base, fast)

        if rows >= pieces:
            tasks = [(span, (0, inner)) for span in spans(rows, -(-rows // pieces))]
        else:
            tasks = [((r, r + 1), span) for r in range(rows)
                     for span in spans(inner, -(-inner * rows // pieces))]
        parallel_for(tasks, compute)

    def infer_shape(self, *args):
        # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        return self.elemwise.infer_shape(*args)


def _output_shape(node, inputs):
    """The broadcast shape, checked as PyTensor's ``Elemwise`` checks it: axes that are not
    broadcastable must agree."""
    shape = [None] * node.outputs[0].type.ndim
    for variable, value in zip(node.inputs, inputs):
        for d, (n, broadcastable) in enumerate(zip(value.shape, variable.type.broadcastable)):
            if broadcastable:
                continue
            if shape[d] is not None and shape[d] != n:
                raise ValueError(
                    f"{node.op.elemwise}: input shapes {[x.shape for x in inputs]} do not "
                    f"agree on axis {d} (axes that are not broadcastable must have equal "
                    "lengths)")
            shape[d] = n
    return tuple(1 if n is None else n for n in shape)


#: Outputs of fewer elements are computed in the calling thread.
_PARALLEL_SIZE = 1 << 17
#: Elemwise nodes of fewer dimensions are left to PyTensor (small tensors: the Python call
#: of ``perform`` costs more than the loop), unless they update in place or their static
#: size is known and large.
_MIN_NDIM = 3


def _updates_shared_variables(node):
    """The node overwrites shared variables in place (an optimiser's update)."""
    destroyed = [inputs[0] for inputs in node.op.destroy_map.values()]
    return bool(destroyed) and all(isinstance(node.inputs[k], SharedVariable)
                                   for k in destroyed)


@node_rewriter([Elemwise])
def local_compiled_elemwise(fgraph, node):
    """``Elemwise`` of :data:`._elemwise_c.SCALAR_OPS` on large tensors →
    :class:`CompiledElemwise` (the conditions: see the module docstring)."""
    op = node.op
    output_type = node.outputs[0].type
    dtypes = [v.type.dtype for v in node.inputs + node.outputs]
    if not _elemwise_c.supported(op.scalar_op, dtypes) or output_type.ndim == 0:
        return None
    static = output_type.shape
    if None not in static:
        if math.prod(static) < _PARALLEL_SIZE:
            return None
    elif output_type.ndim < _MIN_NDIM and not _updates_shared_variables(node):
        return None
    compiled = CompiledElemwise(op)
    if compiled.kernel(compiled.make_node(*node.inputs)) is None:
        return None
    return compiled(*node.inputs, return_list=True)


# After fusion (49) and the in-place rewrites (50.5), so that it wraps the final nodes.
# Not tagged fast_run: only the CPU mode of fcn8_lasagne.compile includes it.
optdb.register("compiled_elemwise", in2out(local_compiled_elemwise), CPU_REWRITES,
               position=60)
