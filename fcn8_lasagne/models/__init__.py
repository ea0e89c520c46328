"""The tutorial's networks (:mod:`.fcn`) and the Caffe-semantics reference FCNs
(:mod:`.caffe_fcn`)."""

from .caffe_fcn import buildFCN8s_caffe, buildFCN16s_caffe, buildFCN32s_caffe
from .fcn import VGG16_BLOCKS, buildFCN8, buildFCN16, buildFCN32, freezeParameters
from . import fcn1d, unet  # noqa: F401  (fcn1d.build_model keeps the original's name)
from .unet import UNET_LAYERS, build_UNet

__all__ = [
    "buildFCN8", "buildFCN16", "buildFCN32", "freezeParameters", "VGG16_BLOCKS",
    "buildFCN8s_caffe", "buildFCN16s_caffe", "buildFCN32s_caffe", "BUILDERS",
    "build_UNet", "UNET_LAYERS",
]

#: The tutorial's builders by CLI name.
BUILDERS = {"fcn8": buildFCN8, "fcn16": buildFCN16, "fcn32": buildFCN32}

from .fcn_resnet import buildFCNResNet  # noqa: E402  (dilated-ResNet FCNs, docs/fcn-resnet.md)
from .resnet import build_resnet_v1b, build_resnet_v1s  # noqa: E402

__all__ += ["buildFCNResNet", "build_resnet_v1b", "build_resnet_v1s"]
