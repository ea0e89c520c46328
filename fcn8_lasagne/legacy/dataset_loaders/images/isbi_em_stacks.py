"""``dataset_loaders.images.isbi_em_stacks.IsbiEmStacksDataset`` (not yet: it arrives with the
U-Net tutorial)."""

from ..parallel_loader import ThreadedDataset

__legacy_shim__ = True

__all__ = ["IsbiEmStacksDataset"]


class IsbiEmStacksDataset(ThreadedDataset):
    """The ISBI 2012 EM stacks (512 x 512 grey images, 2 classes, no void); not yet
    implemented."""

    name = "isbi_em_stacks"
    non_void_nclasses = 2
    _void_labels = []
    data_shape = (512, 512, 1)

    def __init__(self, which_set="train", split=0.85, *args, **kwargs):
        raise NotImplementedError(
            "IsbiEmStacksDataset arrives with the U-Net tutorial: fcn8_lasagne.data has no "
            "ISBI EM stacks reader yet")
