"""Lasagne-compatible layers (Lasagne 0.2.dev1 names, arguments, defaults and semantics)."""

from .base import Layer, MergeLayer
from .conv import (
    BaseConvLayer,
    Conv1DLayer,
    Conv2DLayer,
    Conv3DLayer,
    Deconv2DLayer,
    Deconv3DLayer,
    DilatedConv2DLayer,
    PaddedDilatedConv2DLayer,
    TransposedConv2DLayer,
    TransposedConv3DLayer,
)
from .dense import DenseLayer
from .helper import (
    count_params,
    get_all_layers,
    get_all_param_values,
    get_all_params,
    get_output,
    get_output_shape,
    set_all_param_values,
)
from .input import InputLayer
from .local import LocallyConnected2DLayer
from .merge import (
    ConcatLayer,
    ElemwiseMergeLayer,
    ElemwiseSumLayer,
    autocrop,
    autocrop_array_shapes,
    concat,
    crop_offsets,
)
from .noise import DropoutLayer, dropout
from .normalization import BatchNormLayer, batch_norm
from .pool import (
    FeaturePoolLayer,
    FeatureWTALayer,
    GlobalPoolLayer,
    MaxPool1DLayer,
    MaxPool2DLayer,
    MaxPool3DLayer,
    Pool1DLayer,
    Pool2DLayer,
    Pool3DLayer,
    SpatialPyramidPoolingLayer,
    Upscale1DLayer,
    Upscale2DLayer,
    Upscale3DLayer,
)
from .recurrent import CustomRecurrentLayer, GRULayer, Gate, LSTMLayer, RecurrentLayer
from .shape import (
    DimshuffleLayer,
    FlattenLayer,
    PadLayer,
    ReshapeLayer,
    SliceLayer,
    dimshuffle,
    flatten,
    pad,
    reshape,
)
from .special import BiasLayer, ExpressionLayer, NonlinearityLayer, ScaleLayer
from .special import TPSTransformerLayer, TransformerLayer
from .dense import NINLayer
from .embedding import EmbeddingLayer
from .noise import GaussianNoiseLayer, dropout_channels, dropout_locations, spatial_dropout
from .normalization import (
    LocalResponseNormalization2DLayer,
    StandardizationLayer,
    instance_norm,
    layer_norm,
)
from .special import (
    InverseLayer,
    ParametricRectifierLayer,
    RandomizedRectifierLayer,
    prelu,
    rrelu,
    standardize,
)

__all__ = [
    "Layer", "MergeLayer", "InputLayer",
    "BaseConvLayer", "Conv1DLayer", "Conv2DLayer", "Conv3DLayer", "TransposedConv2DLayer",
    "Deconv2DLayer", "TransposedConv3DLayer", "Deconv3DLayer", "DilatedConv2DLayer",
    "PaddedDilatedConv2DLayer",
    "LocallyConnected2DLayer",
    "Pool1DLayer", "Pool2DLayer", "Pool3DLayer", "MaxPool1DLayer", "MaxPool2DLayer",
    "MaxPool3DLayer", "Upscale1DLayer", "Upscale2DLayer", "Upscale3DLayer",
    "GlobalPoolLayer", "FeaturePoolLayer", "FeatureWTALayer", "SpatialPyramidPoolingLayer",
    "DropoutLayer", "dropout",
    "ConcatLayer", "concat", "ElemwiseMergeLayer", "ElemwiseSumLayer",
    "autocrop", "autocrop_array_shapes", "crop_offsets",
    "DimshuffleLayer", "dimshuffle", "ReshapeLayer", "reshape", "FlattenLayer", "flatten",
    "SliceLayer", "PadLayer", "pad",
    "NonlinearityLayer", "BiasLayer", "ScaleLayer", "ExpressionLayer",
    "TransformerLayer", "TPSTransformerLayer",
    "DenseLayer", "BatchNormLayer", "batch_norm",
    "CustomRecurrentLayer", "RecurrentLayer", "Gate", "LSTMLayer", "GRULayer",
    "get_all_layers", "get_output", "get_output_shape", "get_all_params", "count_params",
    "get_all_param_values", "set_all_param_values",
]

__all__ += [
    "NINLayer", "EmbeddingLayer",
    "GaussianNoiseLayer", "dropout_channels", "spatial_dropout", "dropout_locations",
    "LocalResponseNormalization2DLayer", "StandardizationLayer", "instance_norm", "layer_norm",
    "standardize", "InverseLayer", "ParametricRectifierLayer", "prelu",
    "RandomizedRectifierLayer", "rrelu",
]

from .resize import BilinearResizeLayer  # noqa: E402  (ours: docs/fcn-resnet.md)

__all__ += ["BilinearResizeLayer"]
