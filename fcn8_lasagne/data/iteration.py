"""Mini-batches for the training loop: (B, 3, H, W) float32 images, (B, H, W) int32 labels.

One pass over a :class:`BatchIterator` is one epoch. Epoch ``e`` draws its order and its
augmentation from a random stream made of ``(seed, e)``, so that every epoch is shuffled
differently, the same seed gives the same epochs on any run, and a resumed run can start at
epoch ``e`` by setting :attr:`BatchIterator.epoch`.
"""

import numpy as np

from .augmentation import Augmentation

__all__ = ["BatchIterator"]


class BatchIterator:
    """Iterate over a dataset in mini-batches, one epoch per ``for`` loop.

    Parameters
    ----------
    dataset : SegmentationDataset
        Anything with ``len``, ``dataset[i] -> (image (3, H, W), label (H, W))``,
        ``n_classes``, ``void_label`` and ``image_paths``.
    batch_size : int
        The last batch of an epoch holds the remainder and may be smaller.
    shuffle : bool
        Visit the images in a new random order each epoch (else in dataset order).
    seed : int or None
        Seeds the order and the augmentation. ``None`` draws fresh entropy once, so the
        epochs still differ from each other.
    augmentation : Augmentation or None
        Applied to every image (give it for the training split only). Its ``void_label``,
        when ``None``, is taken from the dataset.

    Attributes
    ----------
    epoch : int
        The epoch the next ``for`` loop will produce; it goes up by one at each loop.
    n_classes, void_label : int
        The dataset's.

    Notes
    -----
    Images of one batch must share their size. Without a crop, a dataset of images of
    varied sizes (Polyps912) needs ``batch_size=1``, as the tutorial's validation and test
    iterators have; otherwise a ``ValueError`` names the files and their sizes.
    """

    def __init__(self, dataset, batch_size, shuffle=False, seed=None, augmentation=None):
        if len(dataset) == 0:
            raise ValueError("cannot iterate over an empty dataset")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed_entropy = np.random.SeedSequence(seed).entropy
        self.augmentation = self._bind_void_label(augmentation, dataset.void_label)
        self.epoch = 0

    @staticmethod
    def _bind_void_label(augmentation, void_label):
        if augmentation is None:
            return None
        if not isinstance(augmentation, Augmentation):
            return augmentation
        if augmentation.void_label is None:
            return augmentation.with_void_label(void_label)
        if augmentation.void_label != void_label:
            raise ValueError(
                f"the augmentation pads labels with {augmentation.void_label} but the "
                f"dataset's void label is {void_label}"
            )
        return augmentation

    @property
    def n_classes(self):
        return self.dataset.n_classes

    @property
    def void_label(self):
        return self.dataset.void_label

    @property
    def n_samples(self):
        return len(self.dataset)

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)

    def _epoch_streams(self, epoch):
        order_seed, augmentation_seed = np.random.SeedSequence(
            self.seed_entropy, spawn_key=(int(epoch),)
        ).spawn(2)
        return np.random.default_rng(order_seed), np.random.default_rng(augmentation_seed)

    def epoch_order(self, epoch):
        """The dataset indices in the order epoch ``epoch`` visits them."""
        if not self.shuffle:
            return np.arange(len(self.dataset))
        return self._epoch_streams(epoch)[0].permutation(len(self.dataset))

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch, with_indices=False)

    def iter_with_indices(self):
        """Like ``iter(self)`` but yields ``(X, Y, indices)``, the dataset indices of the batch."""
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch, with_indices=True)

    def _batches(self, epoch, with_indices):
        order = self.epoch_order(epoch)
        augmentation_rng = self._epoch_streams(epoch)[1]
        for start in range(0, len(order), self.batch_size):
            indices = order[start:start + self.batch_size]
            images, labels = [], []
            for index in indices:
                image, label = self.dataset[index]
                if self.augmentation is not None:
                    image, label = self.augmentation(image, label, augmentation_rng)
                images.append(image)
                labels.append(label)
            batch = self._stack(images, labels, indices)
            yield (*batch, indices) if with_indices else batch

    def _stack(self, images, labels, indices):
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            sizes = ", ".join(
                f"{self.dataset.image_paths[index]} {image.shape[1]}x{image.shape[2]}"
                for index, image in zip(indices, images)
            )
            raise ValueError(
                f"images of one batch differ in size (HxW): {sizes}; use batch_size=1 or "
                "an augmentation with a crop_size"
            )
        images = np.stack(images).astype(np.float32, copy=False)
        labels = np.stack(labels).astype(np.int32, copy=False)
        return images, labels
