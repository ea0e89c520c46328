"""``data_loader.cortical_layers.Cortical6LayersDataset`` (not yet: it arrives with the 1-D FCN
tutorial)."""

from ..dataset_loaders.parallel_loader import ThreadedDataset

__legacy_shim__ = True

__all__ = ["Cortical6LayersDataset"]


class Cortical6LayersDataset(ThreadedDataset):
    """The cortical layers profiles (1-D rays, 7 classes, no void); not yet implemented."""

    name = "cortical_layers"
    non_void_nclasses = 7
    GTclasses = [0, 1, 2, 3, 4, 5, 6]
    _void_labels = []

    def __init__(self, which_set="train", split=0.85, shuffle_at_each_epoch=True,
                 smooth_or_raw="both", *args, **kwargs):
        raise NotImplementedError(
            "Cortical6LayersDataset arrives with the 1-D FCN tutorials: fcn8_lasagne.data has "
            "no cortical layers reader yet")
