"""A network's layer table for a given input size: shapes, parameters and crop offsets."""

from dataclasses import dataclass, field

import numpy as np

from ..layers import InputLayer, crop_offsets, get_output_shape
from ..layers.merge import autocrop_array_shapes

__all__ = ["LayerRow", "layer_table", "format_layer_table", "MIN_INPUT_SIZE",
           "check_input_size"]

#: The smallest height / width the tutorial's FCN-8 (and FCN-16 / FCN-32, same body) can
#: take. ``conv1_1``'s ``pad=100`` makes conv1 H + 198 high, the five floor 2x2 poolings
#: divide that by 32 (pool5 = floor((H + 198) / 32)), and ``fc6``, a valid 7x7 convolution,
#: needs pool5 >= 7: H + 198 >= 7 * 32, so H >= 26 (``docs/fcn8-semantics.md``, section 3).
MIN_INPUT_SIZE = 7 * 2 ** 5 - 198


def check_input_size(height, width, what):
    """Raise a ValueError naming ``what`` if (height, width) is too small for the network.

    Parameters
    ----------
    height, width : int
    what : str
        How the size was given (a flag or a file), for the message.
    """
    for axis, length in (("height", height), ("width", width)):
        if length < MIN_INPUT_SIZE:
            raise ValueError(
                f"{what}: {axis} {length} is too small for the network; FCN-8/16/32 need at "
                f"least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} (fc6, a 7x7 convolution, needs "
                f"pool5 >= 7, i.e. (size + 198) // 32 >= 7); got {height}x{width}")


@dataclass
class LayerRow:
    """One line of the table.

    Attributes
    ----------
    name : str
    kind : str
        The layer class name.
    output_shape : tuple
    n_params : int
    crops : list of (input_name, offsets)
        For merge layers that crop: the (row, column) start offsets applied to each input.
    """

    name: str
    kind: str
    output_shape: tuple
    n_params: int
    crops: list = field(default_factory=list)


def layer_table(net, input_shape):
    """Describe every layer of a net dict for an input of ``input_shape`` (B, C, H, W).

    Every :class:`~fcn8_lasagne.layers.InputLayer` is fed the input's batch and spatial size
    (``input_tmp`` keeps its own channel count), as when the image variable feeds both.
    """
    input_shape = tuple(input_shape)
    shapes = {}
    for layer in net.values():
        if isinstance(layer, InputLayer):
            shapes[layer] = (input_shape[0], layer.shape[1]) + input_shape[2:]
    names = list(net)
    outputs = dict(zip(names, get_output_shape([net[n] for n in names], shapes)))
    name_of = {layer: name for name, layer in net.items()}
    rows = []
    for name in names:
        layer = net[name]
        n_params = sum(int(np.prod(p.get_value(borrow=True).shape)) for p in layer.get_params())
        row = LayerRow(name, type(layer).__name__, outputs[name], n_params)
        cropping = getattr(layer, "cropping", None)
        if cropping is not None:
            in_shapes = [outputs[name_of[l]] if l in name_of else shapes.get(l)
                         for l in layer.input_layers]
            modes = list(cropping) + [None] * (len(in_shapes[0]) - len(cropping))
            per_input = [[0] * len(modes) for _ in in_shapes]
            for axis, mode in enumerate(modes):
                if mode is None:
                    continue
                for k, offset in enumerate(crop_offsets([s[axis] for s in in_shapes], mode)):
                    per_input[k][axis] = offset
            autocrop_array_shapes(in_shapes, cropping)  # raises on an invalid spec
            row.crops = [(name_of.get(l, "?"), tuple(o[2:])) for l, o in
                         zip(layer.input_layers, per_input)]
        rows.append(row)
    return rows


def format_layer_table(rows):
    """The table as text, with a totals line."""
    lines = [f"{'layer':<18}{'type':<22}{'output shape':<26}{'params':>13}  crop offsets"]
    for row in rows:
        crops = ", ".join(f"{source} +{offsets}" for source, offsets in row.crops)
        shape = "x".join("?" if s is None else str(s) for s in row.output_shape)
        lines.append(f"{row.name:<18}{row.kind:<22}{shape:<26}{row.n_params:>13,}  {crops}")
    total = sum(row.n_params for row in rows)
    lines.append(f"{'total':<66}{total:>13,}")
    return "\n".join(lines)
