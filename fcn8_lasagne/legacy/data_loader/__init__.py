"""``data_loader`` of the 1-D FCN tutorial (``code/cnn_1D_segm/data_loader``) for unchanged
scripts: ``data_loader.cortical_layers.Cortical6LayersDataset``."""

from .._errors import shim_getattr
from . import cortical_layers  # noqa: F401  (the submodule)

__legacy_shim__ = True

__getattr__ = shim_getattr(globals(), "data_loader")
