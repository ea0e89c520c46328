"""PyTorch reference FCNs with torchvision's module structure and state-dict keys.

torchvision cannot be installed next to the CPU torch here, so this is written from the
documented structure of ``torchvision.models.segmentation.fcn_resnet50/101``: ResNet
"V1.5" bottlenecks (stride on the 3x3 convolution) with ``replace_stride_with_dilation=
[False, True, True]``, a ``backbone`` holding ``conv1 … layer4`` only (what
``IntermediateLayerGetter`` keeps), ``classifier`` / ``aux_classifier`` ``FCNHead`` s and
``F.interpolate(mode='bilinear', align_corners=False)`` to the input size. ``deep_stem=True``
gives Gluon-CV's V1s stem instead (``conv1`` a Sequential of 7, 64/64/128 channels), and
``align_corners=True`` its ``BilinearResize2D``; :func:`gluon_keys` renames such a model's
state dict to Gluon-CV's ``.params`` names. ``forward_stages`` returns every stage's output.
"""

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """torchvision's ResNet without avgpool / fc (``IntermediateLayerGetter``'s view)."""

    def __init__(self, layers, replace_stride_with_dilation=(False, True, True),
                 deep_stem=False):
        super().__init__()
        self.dilation = 1
        if deep_stem:
            self.inplanes = 128
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.Conv2d(64, 128, 3, 1, 1, bias=False))
        else:
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(512, layers[3], 2, replace_stride_with_dilation[2])

    def _make_layer(self, planes, blocks, stride=1, dilate=False):
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride,
                                                 bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=self.dilation)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)


class FCNHead(nn.Sequential):
    def __init__(self, in_channels, channels):
        inter = in_channels // 4
        super().__init__(nn.Conv2d(in_channels, inter, 3, padding=1, bias=False),
                         nn.BatchNorm2d(inter), nn.ReLU(), nn.Dropout(0.1),
                         nn.Conv2d(inter, channels, 1))


class FCN(nn.Module):
    """``backbone``, ``classifier``, ``aux_classifier``; forward gives ``{'out', 'aux'}``."""

    def __init__(self, depth=50, num_classes=21, aux=True, deep_stem=False,
                 align_corners=False):
        super().__init__()
        layers = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        self.backbone = ResNetBackbone(layers, deep_stem=deep_stem)
        self.classifier = FCNHead(2048, num_classes)
        self.aux_classifier = FCNHead(1024, num_classes) if aux else None
        self.align_corners = align_corners

    def _resize(self, x, size):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward_stages(self, x):
        """Every stage: stem, layer1–4, head, aux (before the resize), out, aux_out."""
        b = self.backbone
        size = x.shape[-2:]
        stages = OrderedDict()
        stages["stem"] = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        top = stages["stem"]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            top = stages[name] = getattr(b, name)(top)
        stages["head"] = self.classifier(stages["layer4"])
        stages["out"] = self._resize(stages["head"], size)
        if self.aux_classifier is not None:
            stages["auxhead"] = self.aux_classifier(stages["layer3"])
            stages["aux"] = self._resize(stages["auxhead"], size)
        return stages

    def forward(self, x):
        stages = self.forward_stages(x)
        result = OrderedDict(out=stages["out"])
        if "aux" in stages:
            result["aux"] = stages["aux"]
        return result


def randomize_batch_norm(model, generator):
    """Non-trivial BN: running means/vars and affine parameters drawn at random."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.num_batches_tracked.fill_(7)
    return model


def state_arrays(model):
    """The state dict as NumPy arrays (``num_batches_tracked`` included)."""
    return OrderedDict((k, v.detach().cpu().numpy().copy())
                       for k, v in model.state_dict().items())


_GLUON_BN = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
             "running_var": "running_var"}


def gluon_keys(model):
    """A ``deep_stem=True`` model's state dict under Gluon-CV's ``FCN`` names:
    ``backbone.`` dropped, ``classifier``/``aux_classifier`` → ``head.block``/
    ``auxlayer.block``, BN ``weight``/``bias`` → ``gamma``/``beta``,
    ``num_batches_tracked`` left out."""
    batch_norms = {name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    arrays = OrderedDict()
    for key, value in state_arrays(model).items():
        module, _, kind = key.rpartition(".")
        if kind == "num_batches_tracked":
            continue
        if module in batch_norms:
            kind = _GLUON_BN[kind]
        name = f"{module}.{kind}"
        if name.startswith("backbone."):
            name = name[len("backbone."):]
        elif name.startswith("aux_classifier."):
            name = "auxlayer.block." + name[len("aux_classifier."):]
        elif name.startswith("classifier."):
            name = "head.block." + name[len("classifier."):]
        arrays[name] = np.asarray(value, dtype=np.float32)
    return arrays
