"""Large fused elementwise expressions (Adam's updates) shared out to the worker threads.

PyTensor fuses chains of elementwise operations into one ``Elemwise`` of a scalar
``Composite`` and compiles it into a single-threaded C loop that computes one element at a
time, square roots and divisions in scalar code: Adam's update of FCN-8's ``fc6.W`` (102.8M
values; read W, m, v and the gradient, write W, m and v) takes 0.25-0.3 s of a 1.4 s
training step on two cores. :class:`ThreadedElemwise` evaluates the same ``Composite``
with NumPy's vectorised ufuncs, one scalar operation after another on blocks of 65,536
elements, and shares the blocks out to the convolution worker threads (0.13 s for
``fc6.W``). Smaller blocks would stay in the L2 cache but spend more time in Python
between the ufunc calls, which the two threads also contend for.

The rewrite :func:`local_threaded_elemwise` puts it in place of ``Elemwise`` nodes in graphs
compiled for the CPU by :func:`fcn8_lasagne.compile.function` (the rewrite tag
:data:`~fcn8_lasagne.ops.reduce.CPU_REWRITES`), after PyTensor's fusion and in-place
rewrites, where

* the scalar operation is a ``Composite`` of the exactly rounded operations of
  :data:`UFUNCS` (addition, multiplication, division, square root, ...) with a division or
  a square root among them (:data:`SLOW_IN_C`), every value of one float dtype, so that
  each step rounds as the C code does;
* every input has the output's shape, or is a single broadcast value (a step size).

The results equal the C loop's except where the C compiler contracts a product and a sum
into one fused multiply-add (one rounding instead of two); NaNs and infinities propagate as
in C, without warnings. To compile without it::

    mode = fcn8_lasagne.compile.mode_for_device("cpu").excluding("threaded_elemwise")
"""

import numpy as np
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
import pytensor.scalar as ps
from pytensor.tensor.elemwise import Elemwise

from ._threads import parallel_for, spans
from .reduce import CPU_REWRITES

__all__ = ["ThreadedElemwise", "local_threaded_elemwise", "UFUNCS", "SLOW_IN_C"]

#: Scalar operation class → the NumPy ufunc that computes it (n-ary ones pairwise, left
#: to right, as PyTensor's C code does). All are exact or correctly rounded, so NumPy and
#: C give the same values; transcendental functions (exp, log, tanh) are left out because
#: NumPy's vectorised versions round differently from the C library's.
UFUNCS = {
    ps.Add: np.add,
    ps.Sub: np.subtract,
    ps.Mul: np.multiply,
    ps.TrueDiv: np.true_divide,
    ps.Neg: np.negative,
    ps.Sqr: np.square,
    ps.Sqrt: np.sqrt,
    ps.Abs: np.absolute,
    ps.Sign: np.sign,
    ps.Identity: np.positive,
}
#: The operations that PyTensor's C loop computes in slow scalar code and NumPy in vector
#: instructions: only a ``Composite`` with one of these gains from the translation; chains
#: of additions and multiplications are faster in the C loop's single pass.
SLOW_IN_C = (ps.TrueDiv, ps.Sqrt)
_FLOATS = ("float32", "float64")
# Elements per block (256 KB of float32 for each temporary).
BLOCK = 1 << 16
# Elements per task handed to a worker (4 blocks).
_TASK = BLOCK << 2


def _program(composite):
    """Translate a ``Composite`` into steps over numbered value slots.

    Slots ``0 .. n_inputs - 1`` hold the inputs, then come the constants, then one
    temporary per step. Returns ``(steps, constant values, output slots)``, a step being
    ``(ufunc, argument slots, result slot)``.
    """
    inputs, outputs = composite.fgraph.inputs, composite.fgraph.outputs
    nodes = composite.fgraph.toposort()
    constants = []
    for variable in [v for node in nodes for v in node.inputs] + list(outputs):
        if isinstance(variable, Constant) and variable not in constants:
            constants.append(variable)
    slots = {variable: k for k, variable in enumerate(list(inputs) + constants)}
    steps = []
    for node in nodes:
        result = len(slots)
        steps.append((UFUNCS[type(node.op)], tuple(slots[v] for v in node.inputs), result))
        slots[node.outputs[0]] = result
    values = [np.asarray(c.data, c.type.dtype)[()] for c in constants]
    return steps, values, [slots[variable] for variable in outputs]


def _worth_translating(composite):
    """Whether every step of ``composite`` has a ufunc, all of one float dtype, and one
    of them is :data:`SLOW_IN_C`."""
    dtypes = set()
    nodes = composite.fgraph.toposort()
    for node in nodes:
        if type(node.op) not in UFUNCS or len(node.outputs) != 1:
            return False
        dtypes.update(v.type.dtype for v in node.inputs + node.outputs)
    dtypes.update(v.type.dtype for v in composite.fgraph.inputs + composite.fgraph.outputs)
    return (len(dtypes) == 1 and dtypes <= set(_FLOATS)
            and any(isinstance(node.op, SLOW_IN_C) for node in nodes))


class ThreadedElemwise(Op):
    """An ``Elemwise`` of a ``Composite``, evaluated with NumPy in blocks on worker threads.

    Same inputs, outputs, broadcasting and in-place pattern as the wrapped op; see the
    module docstring for when the CPU rewrite uses it.

    Parameters
    ----------
    elemwise : pytensor.tensor.elemwise.Elemwise
        Its ``scalar_op`` is a ``Composite`` accepted by the rewrite.
    """

    __props__ = ("elemwise",)

    def __init__(self, elemwise):
        self.elemwise = elemwise
        self.destroy_map = dict(elemwise.destroy_map)
        self._compiled = None

    def make_node(self, *inputs):
        node = self.elemwise.make_node(*inputs)
        return Apply(self, node.inputs, [output.type() for output in node.outputs])

    def _get_program(self):
        if self._compiled is None:
            self._compiled = _program(self.elemwise.scalar_op)
        return self._compiled

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_compiled"] = None  # ufuncs pickle by name, but rebuilding is cheap
        return state

    def perform(self, node, inputs, output_storage):
        steps, constants, output_slots = self._get_program()
        shape = np.broadcast_shapes(*(x.shape for x in inputs))
        size = int(np.prod(shape))
        # single broadcast values become NumPy scalars, the rest flat arrays
        sources = [x.reshape(-1)[0] if x.size == 1 and x.shape != shape
                   else np.ascontiguousarray(x).reshape(-1) for x in inputs]
        blocked = [k for k, x in enumerate(sources) if x.ndim == 1]
        targets, flat_targets = [], []
        for k, output in enumerate(node.outputs):
            if k in self.destroy_map:
                target = inputs[self.destroy_map[k][0]]
            else:
                target = np.empty(shape, dtype=output.type.dtype)
            targets.append(target)
            flat_targets.append(target.reshape(-1) if target.flags.c_contiguous
                                else np.empty(size, dtype=target.dtype))
        dtype = node.outputs[0].type.dtype
        n_fixed = len(sources) + len(constants)

        def make_slots():
            temporaries = [np.empty(min(BLOCK, size), dtype) for _ in steps]
            return sources + constants + temporaries

        def evaluate(span, slots):
            # NaNs and infinities arise silently, as in the C loop (the error state is
            # per thread)
            with np.errstate(all="ignore"):
                evaluate_blocks(*span, slots)

        def evaluate_blocks(start, stop, slots):
            values = list(slots)
            for block_start in range(start, stop, BLOCK):
                block_stop = min(stop, block_start + BLOCK)
                length = block_stop - block_start
                for k in blocked:
                    values[k] = sources[k][block_start:block_stop]
                if length < BLOCK:
                    values[n_fixed:] = [t[:length] for t in slots[n_fixed:]]
                for ufunc, args, result in steps:
                    out = values[result]
                    ufunc(values[args[0]], *[values[a] for a in args[1:2]], out=out)
                    for extra in args[2:]:
                        ufunc(out, values[extra], out=out)
                # outputs last: an in-place output may overwrite an input read above
                for slot, flat in zip(output_slots, flat_targets):
                    flat[block_start:block_stop] = values[slot]

        # Memory-bound: weigh each step as a few operations, so that expressions of about
        # a million values go to the threads.
        parallel_for(spans(size, _TASK), evaluate, make_state=make_slots,
                     flops=4.0 * size * max(1, len(steps)))
        for k, (target, flat) in enumerate(zip(targets, flat_targets)):
            if not target.flags.c_contiguous:
                target[...] = flat.reshape(shape)
            output_storage[k][0] = target

    def infer_shape(self, *args):
        # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        return self.elemwise.infer_shape(*args)


def _full_or_single(input_type, output_type):
    """The input has the output's broadcast pattern, or is a single broadcast value."""
    return (all(input_type.broadcastable)
            or input_type.broadcastable == output_type.broadcastable)


@node_rewriter([Elemwise])
def local_threaded_elemwise(fgraph, node):
    """``Elemwise`` of a float ``Composite`` of :data:`UFUNCS` → :class:`ThreadedElemwise`."""
    op = node.op
    if not isinstance(op.scalar_op, ps.Composite) or not _worth_translating(op.scalar_op):
        return None
    output_type = node.outputs[0].type
    if output_type.ndim == 0 or not all(_full_or_single(x.type, output_type)
                                        for x in node.inputs):
        return None
    if not any(x.type.broadcastable == output_type.broadcastable for x in node.inputs):
        return None
    return ThreadedElemwise(op)(*node.inputs, return_list=True)


# After fusion (49) and the in-place rewrites (50.5), so that it wraps the final nodes.
# Not tagged fast_run: only the CPU mode of fcn8_lasagne.compile includes it.
optdb.register("threaded_elemwise", in2out(local_threaded_elemwise), CPU_REWRITES,
               position=60)
