"""``dataset_loaders.parallel_loader.ThreadedDataset``: fvisin/dataset_loaders' iterator API.

The base class of the tutorials' dataset classes. A subclass gives ``name``,
``non_void_nclasses``, ``_void_labels``, ``get_names()`` (a dict: subset -> list of names)
and ``load_sequence(sequence)`` (a dict with ``'data'`` (frames, rows, columns, channels)
float in [0, 1], ``'labels'`` (frames, rows, columns) int, ``'subset'``, ``'filenames'``),
as in the original. The iterator then does what the original's did, in its order: map the
void labels to ``non_void_nclasses`` (the others to ``0 .. non_void_nclasses - 1``),
per-image normalisation, the augmentation of ``data_augm_kwargs`` (crop and flips, by
:class:`fcn8_lasagne.data.Augmentation`), one-hot labels, channels first unless
``return_01c``, ``return_0_255``; and returns ``[data, labels]`` (``return_list``) or a dict
with ``data``, ``labels``, ``filenames``, ``subset``, ``raw_data``.

Differences from the original (see ``docs/faithfulness.md``):

* ``use_threads`` is accepted and the batches are loaded in the calling thread (the
  original's threads made their order non-deterministic; the batches are the same);
* ``nsamples`` is the number of images (the original gave the number of subsets);
* only ``seq_length`` 0 (4-D batches) is implemented, and of the augmentations only the
  crop (``crop_mode='random'``) and the flips: another option with a non-default value
  raises ``NotImplementedError``;
* ``remove_mean`` / ``divide_by_std`` need ``mean`` / ``std`` attributes on the class.
"""

import numpy as np

from ...data.augmentation import Augmentation
from .._errors import not_provided_message

__all__ = ["ThreadedDataset", "classproperty"]

#: The original's defaults of ``data_augm_kwargs``.
DEFAULT_DATA_AUGM_KWARGS = {
    "crop_size": None, "crop_mode": "random", "rotation_range": 0, "width_shift_range": 0,
    "height_shift_range": 0, "shear_range": 0, "zoom_range": 0, "channel_shift_range": 0,
    "fill_mode": "nearest", "cval": 0, "cval_mask": 0, "horizontal_flip": False,
    "vertical_flip": False, "rescale": None, "spline_warp": False, "warp_sigma": 0.1,
    "warp_grid_size": 3, "gamma": 0, "gain": 1,
}
# Options whose values change nothing without a rotation/zoom/shift (which are refused).
_INERT_OPTIONS = ("fill_mode", "cval_mask", "warp_sigma", "warp_grid_size")


class classproperty:  # noqa: N801  (the original's name)
    """A read-only property computed from the class (readable on the class and instances)."""

    def __init__(self, getter):
        self.getter = getter
        self.__doc__ = getter.__doc__

    def __get__(self, instance, owner):
        return self.getter(owner)


def _augmentation(options, void_label):
    options = dict(options)
    for key, value in options.items():
        if key in _INERT_OPTIONS or key in ("crop_size", "horizontal_flip", "vertical_flip"):
            continue
        if key == "crop_mode":
            if value != "random":
                raise NotImplementedError(not_provided_message(
                    f"dataset_loaders data_augm_kwargs crop_mode={value!r}", kind="option"))
            continue
        if key not in DEFAULT_DATA_AUGM_KWARGS:
            raise ValueError(f"unknown data_augm_kwargs option {key!r}")
        if value != DEFAULT_DATA_AUGM_KWARGS[key]:
            raise NotImplementedError(not_provided_message(
                f"dataset_loaders data_augm_kwargs {key}={value!r}", kind="option") +
                " Implemented: crop_size, horizontal_flip, vertical_flip.")
    if options["cval"] != 0:
        raise NotImplementedError("padding crops with cval != 0 is not implemented")
    # The original flipped every image when a flip option was True (random() < True).
    return Augmentation(crop_size=options["crop_size"],
                        horizontal_flip=options["horizontal_flip"],
                        vertical_flip=options["vertical_flip"], flip_every_image=True,
                        void_label=void_label, fill_value=0.0)


class ThreadedDataset:
    """fvisin/dataset_loaders' ``ThreadedDataset``: a dataset iterated in mini-batches.

    Parameters
    ----------
    seq_per_subset : int
        At most this many (randomly picked, anew each epoch) images per subset; 0: all.
    seq_length : int
        Must be 0 (or None): 4-D batches.
    overlap : int or None
        Only for sequences; accepted.
    batch_size : int
    return_one_hot : bool
        Labels one-hot, with ``nclasses`` channels.
    return_01c : bool
        Channels last (rows, columns, channels) instead of first.
    return_0_255 : bool
        Images as uint8 in 0..255 instead of float32 in [0, 1].
    use_threads, nthreads, queues_size
        Accepted; loading happens in the calling thread.
    shuffle_at_each_epoch : bool
        Shuffle the images (with ``rng``) at the start of each epoch (and at creation).
    infinite_iterator : bool
        ``False``: ``next()`` raises ``StopIteration`` at the end of an epoch.
    return_list : bool
        ``next()`` returns ``[data, labels]`` instead of a dict.
    fill_last_batch : bool
        Repeat the last image to fill the last batch of an epoch.
    data_augm_kwargs : dict
        fvisin/dataset_loaders' ``random_transform`` options; ``crop_size``,
        ``horizontal_flip`` and ``vertical_flip`` are implemented (a flip option ``True``
        flips every image, as the original did).
    remove_mean, divide_by_std, remove_per_img_mean, divide_by_per_img_std : bool
        Normalisations, as in the original.
    raise_IOErrors : bool
        Accepted; errors are always raised.
    rng : numpy.random.RandomState or None
        Shuffles the images (default ``RandomState(0xbeef)``, the original's).
    return_extended_sequences, return_middle_frame_only, one_subset_per_batch
        Only for sequences; accepted.

    Notes
    -----
    The augmentation draws from NumPy's global generator, as the original's did, so
    ``np.random.seed`` makes the crops and flips repeatable.
    """

    def __init__(self, seq_per_subset=0, seq_length=0, overlap=None,
                 one_subset_per_batch=False, batch_size=1, queues_size=20,
                 return_one_hot=False, return_01c=False, return_extended_sequences=False,
                 return_middle_frame_only=False, return_0_255=False, use_threads=False,
                 nthreads=1, shuffle_at_each_epoch=True, infinite_iterator=True,
                 return_list=False, fill_last_batch=False, data_augm_kwargs=None,
                 remove_mean=False, divide_by_std=False, remove_per_img_mean=False,
                 divide_by_per_img_std=False, raise_IOErrors=False, rng=None, **kwargs):
        if kwargs:
            print(f"Unknown arguments: {list(kwargs)}")
        options = dict(DEFAULT_DATA_AUGM_KWARGS)
        options.update(data_augm_kwargs or {})
        crop_size = options["crop_size"]
        if crop_size is not None:
            crop_size = [crop_size, crop_size] if isinstance(crop_size, int) else list(crop_size)
            options["crop_size"] = None if crop_size == [0, 0] else crop_size
        self.data_augm_kwargs = options
        missing = [attr for attr in ("name", "non_void_nclasses", "_void_labels")
                   if not hasattr(self, attr)]
        if missing:
            raise NameError(f"Mandatory argument(s) missing: {missing}")
        if (not hasattr(self, "data_shape") and batch_size > 1
                and not self.data_augm_kwargs["crop_size"]):
            raise ValueError(
                f"{self.name} has no `data_shape` attribute, this means that the shape of "
                "the samples varies across the dataset. You must either set "
                "`batch_size = 1` or specify a `crop_size`")
        if seq_length:
            raise NotImplementedError(not_provided_message(
                f"dataset_loaders sequences (seq_length={seq_length!r})", kind="option"))
        self._augmentation = _augmentation(options, self.non_void_nclasses
                                           if self._void_labels else None)
        self.seq_per_subset = seq_per_subset
        self.return_sequence = False
        self.seq_length = seq_length
        self.overlap = 0 if overlap is None else overlap
        self.one_subset_per_batch = one_subset_per_batch
        self.batch_size = batch_size
        self.queues_size = queues_size
        self.return_one_hot = return_one_hot
        self.return_01c = return_01c
        self.return_extended_sequences = return_extended_sequences
        self.return_middle_frame_only = return_middle_frame_only
        self.return_0_255 = return_0_255
        self.use_threads = use_threads
        self.nthreads = nthreads
        self.shuffle_at_each_epoch = shuffle_at_each_epoch
        self.infinite_iterator = infinite_iterator
        self.return_list = return_list
        self.fill_last_batch = fill_last_batch
        self.remove_mean = remove_mean
        self.divide_by_std = divide_by_std
        self.remove_per_img_mean = remove_per_img_mean
        self.divide_by_per_img_std = divide_by_per_img_std
        self.raise_IOErrors = raise_IOErrors
        self.rng = rng if rng is not None else np.random.RandomState(0xBEEF)
        self.set_has_GT = getattr(self, "set_has_GT", True)
        data_shape = list(getattr(type(self), "data_shape", (None, None, 3)))
        if self.data_augm_kwargs["crop_size"]:
            data_shape[-3:-1] = self.data_augm_kwargs["crop_size"]
        self.data_shape = (data_shape if return_01c
                           else [data_shape[2], *data_shape[:2], *data_shape[3:]])
        self.names_per_subset = self.get_names()
        self._fill_names_sequences()
        if not self.names_sequences:
            raise RuntimeError("The name list cannot be empty")
        self._fill_names_batches(shuffle_at_each_epoch)

    # --- what a dataset implements -----------------------------------------------------
    def get_names(self):
        """A dict: subset -> list of names (``'default'`` when there is no subset)."""
        raise NotImplementedError

    def load_sequence(self, sequence):
        """Load a list of ``(subset, name)``: a dict with ``data``, ``labels``, ``subset``,
        ``filenames``."""
        raise NotImplementedError

    # --- batches -----------------------------------------------------------------------
    def _fill_names_sequences(self):
        self.names_sequences = {subset: [((subset, name),) for name in names]
                                for subset, names in self.names_per_subset.items()}

    def _fill_names_batches(self, shuffle):
        sequences = []
        for subset_sequences in self.names_sequences.values():
            if self.seq_per_subset:
                picked = np.random.permutation(len(subset_sequences))[:self.seq_per_subset]
                subset_sequences = [subset_sequences[index] for index in picked]
            sequences.extend(subset_sequences)
        if shuffle:
            order = np.arange(len(sequences))
            self.rng.shuffle(order)
            sequences = [sequences[index] for index in order]
        batches = [sequences[start:start + self.batch_size]
                   for start in range(0, len(sequences), self.batch_size)]
        self.nsamples = len(sequences)
        self.nbatches = len(batches)
        self.names_batches = iter(batches)

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self):
        """The next mini-batch; at the end of an epoch the batches are made anew (shuffled
        when ``shuffle_at_each_epoch``) and, unless ``infinite_iterator``, ``StopIteration``
        is raised."""
        while True:
            try:
                batch = next(self.names_batches)
            except StopIteration:
                self._fill_names_batches(self.shuffle_at_each_epoch)
                if not self.infinite_iterator:
                    raise
                continue
            return self.fetch_from_dataset(batch)

    def _map_labels(self, labels):
        if not (self.set_has_GT and self._void_labels):
            return labels
        mapping = self._mapping
        lookup = np.arange(max(max(mapping), int(labels.max(initial=0))) + 1)
        for value, class_id in mapping.items():
            lookup[value] = class_id
        return lookup[labels].astype(labels.dtype, copy=False)

    def fetch_from_dataset(self, batch_to_load):
        """Load, transform and stack the items of one batch (see the module notes)."""
        batch = {}
        for sequence in batch_to_load:
            item = self.load_sequence(sequence)
            data = np.asarray(item["data"], dtype=np.float32)
            raw_data = data.copy()
            labels = item["labels"]
            if self.remove_per_img_mean:
                data -= data.mean(axis=tuple(range(data.ndim - 1)), keepdims=True)
            if self.divide_by_per_img_std:
                data /= data.std(axis=tuple(range(data.ndim - 1)), keepdims=True)
            if self.remove_mean:
                data -= np.asarray(self.mean, dtype=np.float32)
            if self.divide_by_std:
                data /= np.asarray(self.std, dtype=np.float32)
            if data.ndim == 3:
                data, raw_data = data[np.newaxis], raw_data[np.newaxis]
            image = data[0].transpose(2, 0, 1)  # (c, 0, 1), the augmentation's layout
            if self.set_has_GT:
                label = self._map_labels(np.asarray(labels).reshape(data.shape[1:3]))
                image, label = self._augmentation(image, label, np.random)
            else:
                image, _ = self._augmentation(image, np.zeros(image.shape[1:], np.int32),
                                              np.random)
                label = labels
            if self.set_has_GT and self.return_one_hot:
                label = np.eye(self.nclasses, dtype=np.int32)[label]
                if not self.return_01c:
                    label = label.transpose(2, 0, 1)
            if self.return_01c:
                image, raw = image.transpose(1, 2, 0), raw_data[0]
            else:
                raw = raw_data[0].transpose(2, 0, 1)
            if self.return_0_255:
                image = (image * 255).astype(np.uint8)
            item = dict(item, data=np.ascontiguousarray(image), labels=label, raw_data=raw)
            for key, value in item.items():
                batch.setdefault(key, []).append(value)
        if self.fill_last_batch:  # repeat the last item as it came out (not re-augmented)
            for values in batch.values():
                values.extend([values[-1]] * (self.batch_size - len(batch_to_load)))
        for key, values in batch.items():
            try:
                batch[key] = np.array(values)
            except ValueError:  # items of different shapes stay a list
                pass
        if self.return_list:
            return [batch["data"], batch["labels"]]
        return batch

    def reset(self, shuffle, reload_sequences_from_dataset=True):
        """Make the batches anew (reading the names again first, by default)."""
        if reload_sequences_from_dataset:
            self.names_per_subset = self.get_names()
            self._fill_names_sequences()
        self._fill_names_batches(shuffle)

    def shuffle(self):
        """Shuffle the images and make new batches."""
        self._fill_names_batches(True)

    def finish(self):
        """Stop the loader threads (there are none)."""

    # --- the original's older accessors ------------------------------------------------
    def get_n_batches(self):
        return self.nbatches

    def get_n_samples(self):
        return self.nsamples

    def get_n_classes(self):
        return self.nclasses

    def get_void_labels(self):
        return self.void_labels

    def get_cmap(self):
        return self.cmap

    def get_mask_labels(self):
        return self.mask_labels

    # --- class properties --------------------------------------------------------------
    @classproperty
    def nclasses(cls):
        """Classes in the labels: ``non_void_nclasses``, plus one when there is a void."""
        return cls.non_void_nclasses + (1 if getattr(cls, "_void_labels", []) else 0)

    @classproperty
    def void_labels(cls):
        """``[non_void_nclasses]`` (every void label is mapped to it), or ``[]``."""
        return [cls.non_void_nclasses] if getattr(cls, "_void_labels", []) else []

    @classproperty
    def _mapping(cls):
        void = list(cls._void_labels)
        if hasattr(cls, "GTclasses"):
            mapping = {value: index for index, value in
                       enumerate(sorted(set(cls.GTclasses) - set(void)))}
        else:
            mapping, shift = {}, 0
            for value in range(cls.non_void_nclasses + len(void)):
                if value in void:
                    shift += 1
                else:
                    mapping[value] = value - shift
        for value in void:
            mapping[value] = cls.non_void_nclasses
        return mapping

    @classproperty
    def _inv_mapping(cls):
        return {class_id: value for value, class_id in cls._mapping.items()}

    @classproperty
    def cmap(cls):
        """One colour per mapped class, in [0, 1]."""
        colours = getattr(cls, "_cmap", {})
        inverse = cls._inv_mapping
        cmap = np.array([colours[inverse[key]] for key in sorted(inverse)])
        return cmap / 255.0 if cmap.max() > 1 else cmap

    @classproperty
    def mask_labels(cls):
        """One name per mapped class."""
        names = getattr(cls, "_mask_labels", {})
        if not names:
            return []
        inverse = cls._inv_mapping
        return np.array([names[inverse[key]] for key in sorted(inverse)])
