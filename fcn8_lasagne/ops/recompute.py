"""Elementwise values recomputed where the backward pass reads them, instead of kept.

A training graph keeps every value that its backward pass reads alive from the forward
pass until then. After PyTensor's fusion, a batch normalisation followed by a rectifier
leaves several such values per layer, each a whole feature map: ``x - mean`` (for the
gradient of the scale), the normalised ``y`` and a second ``x - mean`` (for the
rectifier's gradient, whose fused loop reads them), besides the rectifier's output (the
next convolution's input) - where PyTorch keeps the convolution's output and the
rectifier's. In torchvision's fcn_resnet50 at batch 2 and 480 x 480 that made the peak
memory 1.39x PyTorch's.

:func:`recompute_elemwise` rewrites such a backward ``Elemwise`` node to compute those values
itself from the inputs of the forward ``Elemwise`` that made them (here the convolution's
output and per-channel vectors): its scalar expression becomes one ``Composite`` of both.
The values are the same, bit for bit (the same scalar operations on the same operands),
and the fused loop reads one feature map where it read two or three.

Which nodes: a node's inputs made by one elementwise producer are replaced by the
producer's expression when that frees more feature maps than it keeps alive longer. A
replaced value is freed when every other node reading it runs before this one (is one of
its ancestors); an input of the producer is kept alive longer unless this node reads it
already, or another reader may run after this one, or the reader makes one of this node's
inputs (it runs just before). Only whole feature maps count (values with a broadcastable
axis, such as per-channel vectors, are small), producers of at most
:data:`MAX_RECOMPUTED_OPS` scalar operations are recomputed, and a graph's outputs are
never replaced. Outputs of producers that nothing reads any more are dropped.

The rewrite runs in graphs compiled for the CPU by :func:`fcn8_lasagne.compile.function`
(the rewrite tag :data:`~fcn8_lasagne.ops.reduce.CPU_REWRITES`), after PyTensor's fusion and
before its in-place rewrites. To compile without it::

    mode = fcn8_lasagne.compile.mode_for_device("cpu").excluding("recompute_elemwise")
"""

from pytensor.compile import optdb
from pytensor.graph.rewriting.basic import GraphRewriter, in2out
from pytensor.scalar import Composite, get_scalar_type
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.rewriting.elemwise import local_useless_composite_outputs

from .reduce import CPU_REWRITES

__all__ = ["MAX_RECOMPUTED_OPS", "recompute_elemwise"]

#: Producers of more scalar operations are not recomputed.
MAX_RECOMPUTED_OPS = 24


def _is_feature_map(variable):
    """A tensor of at least 2 dimensions without broadcastable axes."""
    broadcastable = getattr(variable.type, "broadcastable", None)
    return broadcastable is not None and len(broadcastable) >= 2 and not any(broadcastable)


def _scalar_op_count(scalar_op):
    fgraph = getattr(scalar_op, "fgraph", None)
    return 1 if fgraph is None else len(fgraph.apply_nodes)


def _fused(node, producer):
    """Outputs of an ``Elemwise`` computing ``node``'s outputs from its inputs, with the
    inputs that ``producer`` makes replaced by ``producer``'s expression."""
    scalars = {}

    def scalar_of(variable):
        if variable not in scalars:
            scalars[variable] = get_scalar_type(variable.type.dtype)()
        return scalars[variable]

    made = producer.op.scalar_op.make_node(*[scalar_of(v) for v in producer.inputs]).outputs
    inputs = []
    for variable in node.inputs:
        if variable.owner is producer:
            inputs.append(made[producer.outputs.index(variable)])
        else:
            inputs.append(scalar_of(variable))
    outputs = node.op.scalar_op.make_node(*inputs).outputs
    tensor_inputs = list(scalars)
    composite = Composite([scalars[v] for v in tensor_inputs], outputs)
    return Elemwise(composite)(*tensor_inputs, return_list=True)


_drop_unread_outputs = in2out(local_useless_composite_outputs)


class RecomputeElemwise(GraphRewriter):
    """The graph rewrite of this module (see its docstring)."""

    def add_requirements(self, fgraph):
        pass

    def apply(self, fgraph):
        order = fgraph.toposort()
        # a topological numbering: an ancestor always has a smaller number
        self.position = {node: k for k, node in enumerate(order)}
        self.fgraph = fgraph
        outputs = set(fgraph.outputs)
        changed = False
        for node in order:
            while node in self.position and isinstance(node.op, Elemwise):
                node = self._rewrite(node, outputs)
                changed = changed or node is not None
        del self.position, self.fgraph
        if changed:  # the producers' outputs that nothing reads any more
            _drop_unread_outputs.rewrite(fgraph)

    def _is_ancestor(self, ancestor, node):
        """Whether ``node`` depends on ``ancestor`` (both apply nodes of the graph)."""
        if ancestor is node:
            return False
        floor = self.position[ancestor]
        seen, stack = set(), [node]
        while stack:
            for variable in stack.pop().inputs:
                owner = variable.owner
                if owner is ancestor:
                    return True
                if owner is None or owner in seen or self.position.get(owner, -1) < floor:
                    continue
                seen.add(owner)
                stack.append(owner)
        return False

    def _readers(self, variable, without=()):
        readers = [client for client, _ in self.fgraph.clients[variable]
                   if client not in without]
        return [None if client not in self.position else client for client in readers]

    def _rewrite(self, node, outputs):
        """Replace ``node`` by its fusion with the best producer; the new node, or None."""
        best = None
        producers = {v.owner for v in node.inputs
                     if v.owner is not None and isinstance(v.owner.op, Elemwise)
                     and _is_feature_map(v) and v not in outputs}
        # producers of ``node``'s inputs: a value they read stays alive until ``node``
        neighbours = {v.owner for v in node.inputs if v.owner is not None}
        for producer in producers:
            if _scalar_op_count(producer.op.scalar_op) > MAX_RECOMPUTED_OPS:
                continue
            replaced = {v for v in node.inputs if v.owner is producer}
            if not all(_is_feature_map(v) for v in replaced):
                continue
            # freed: replaced values that nothing reads after ``node``
            freed = sum(all(reader is not None and self._is_ancestor(reader, node)
                            for reader in self._readers(v, without=(node,)))
                        for v in replaced)
            # kept longer: the producer's feature-map inputs that every other reader
            # (but ``node``'s neighbours) reads before ``node``
            kept = set(node.inputs)
            lengthened = 0
            for variable in set(producer.inputs) - kept:
                if not _is_feature_map(variable):
                    continue
                readers = self._readers(variable, without=(producer,))
                if not any(reader is None or reader in neighbours
                           or not self._is_ancestor(reader, node) for reader in readers):
                    lengthened += 1
            gain = freed - lengthened
            if gain > 0 and (best is None or gain > best[0]):
                best = (gain, producer)
        if best is None:
            return None
        new_outputs = _fused(node, best[1])
        converted = [old.type.convert_variable(new)
                     for old, new in zip(node.outputs, new_outputs)]
        if any(new is None for new in converted):
            return None
        self.fgraph.replace_all_validate(list(zip(node.outputs, converted)),
                                         reason="recompute_elemwise")
        new_node = new_outputs[0].owner
        self.position[new_node] = self.position.pop(node)
        return new_node


recompute_elemwise = RecomputeElemwise()

# After PyTensor's fusion (49) and before its destroy handler and in-place rewrites (49.5,
# 50.5). Not tagged fast_run: only the CPU mode of fcn8_lasagne.compile includes it.
optdb.register("recompute_elemwise", recompute_elemwise, CPU_REWRITES, position=49.2)
