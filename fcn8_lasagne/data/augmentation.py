"""Training-time augmentation of the tutorial: flips, then a random crop padded with void.

``train_fcn8.py`` passes ``{'crop_size': (224, 224), 'horizontal_flip': True,
'fill_mode': 'constant'}`` to fvisin/dataset_loaders, whose ``random_transform`` does, in
this order:

1. horizontal flip ``if np.random.random() < horizontal_flip``, then the same test for
   ``vertical_flip``. With ``horizontal_flip=True`` the test is ``random() < True``, and
   ``True == 1``, so **every training image is flipped every time**: the network never sees
   a frame the right way round during training (validation and test frames are not flipped).
   :meth:`Augmentation.from_tutorial_dict` reads ``True`` as "flip half the time" unless
   ``flip_every_image=True`` asks for the original behaviour.
2. a crop to ``crop_size``, axis by axis: an axis longer than the crop gets a random window;
   an axis shorter than (or equal to) the crop is kept whole and padded **centred** (half
   the missing length before, the rest after; an odd remainder goes after) with zeros in
   the image and the void label in the labels. ``'fill_mode'`` only concerns rotations and
   zooms, which the tutorial does not use.

One difference, on purpose: the original drew the window start with
``np.random.randint(h - crop)``, which never picks the last position ``h - crop``; here
every start ``0 .. h - crop`` is equally likely.
"""

import numbers

import numpy as np

__all__ = ["Augmentation"]

_TUTORIAL_KEYS = ("crop_size", "horizontal_flip", "vertical_flip", "fill_mode")
#: The ``fill_mode`` values accepted (the only padding the crop does).
_FILL_MODES = ("constant",)


def _crop_size_pair(crop_size):
    if crop_size is None:
        return None
    if isinstance(crop_size, numbers.Number):
        crop_size = (crop_size, crop_size)
    crop_size = tuple(crop_size)
    bad = [length for length in crop_size
           if isinstance(length, bool) or not isinstance(length, numbers.Integral)]
    if bad:
        raise ValueError(f"data_augmentation crop_size entries must be integers (height, "
                         f"width), got {list(crop_size)}")
    crop_size = tuple(int(length) for length in crop_size)
    if len(crop_size) != 2:
        raise ValueError(f"data_augmentation crop_size must be (height, width), got "
                         f"{list(crop_size)}")
    if crop_size == (0, 0):  # the original's way of saying "no crop"
        return None
    if min(crop_size) < 1:
        raise ValueError(f"data_augmentation crop_size must be positive, got "
                         f"{list(crop_size)}")
    return crop_size


def _flip_probability(value, flip_every_image, what):
    if value is True:
        return 1.0 if flip_every_image else 0.5
    if value is False or value is None:
        return 0.0
    try:
        probability = float(value)
    except (TypeError, ValueError):
        probability = float("nan")
    if isinstance(value, str) or not 0.0 <= probability <= 1.0:
        raise ValueError(f"{what} must be a probability in [0, 1] or a bool, got {value!r}")
    return probability


def _random_uniform(rng):
    return float(rng.random())


def _random_start(rng, n_starts):
    # numpy.random.Generator has integers(), the legacy RandomState randint().
    if hasattr(rng, "integers"):
        return int(rng.integers(0, n_starts))
    return int(rng.randint(0, n_starts))


class Augmentation:
    """Random flips and a random crop for one (image, label) pair.

    Parameters
    ----------
    crop_size : int, (int, int) or None
        (height, width) of the output; ``None`` or ``(0, 0)`` keeps the size.
    horizontal_flip, vertical_flip : float or bool
        Probability of mirroring left-right / upside-down. ``True`` means 0.5, or 1.0
        when ``flip_every_image`` is set; ``False`` means 0.
    flip_every_image : bool
        Read ``True`` flip settings as the original did: flip every image (see the module
        notes).
    void_label : int or None
        The label given to padded pixels. Needed when an image can be smaller than the
        crop; :class:`~fcn8_lasagne.data.iteration.BatchIterator` fills it in from the
        dataset when left ``None``.
    fill_value : float
        The image value of padded pixels (the original: 0).

    Notes
    -----
    Called as ``augmentation(image, label, rng)`` with image (C, H, W), label (H, W) and a
    ``numpy.random.Generator`` (or ``RandomState``); returns new arrays of the same dtypes.
    The random numbers are drawn in a fixed order: horizontal flip, vertical flip (each
    only when its probability is neither 0 nor 1), crop row start, crop column start (each
    only when that axis is longer than the crop).
    """

    def __init__(self, crop_size=None, horizontal_flip=0.0, vertical_flip=0.0,
                 flip_every_image=False, void_label=None, fill_value=0.0):
        self.crop_size = _crop_size_pair(crop_size)
        self.flip_every_image = bool(flip_every_image)
        self.horizontal_flip = _flip_probability(horizontal_flip, flip_every_image,
                                                 "horizontal_flip")
        self.vertical_flip = _flip_probability(vertical_flip, flip_every_image, "vertical_flip")
        self.void_label = None if void_label is None else int(void_label)
        self.fill_value = float(fill_value)

    @classmethod
    def from_tutorial_dict(cls, options, flip_every_image=False, void_label=None):
        """Build from the ``data_augmentation`` dict of ``train_fcn8.py``.

        Parameters
        ----------
        options : dict
            Keys among 'crop_size', 'horizontal_flip', 'vertical_flip' and 'fill_mode'
            (which must be 'constant', the only padding the crop does). An empty dict
            means no augmentation.
        flip_every_image : bool
            ``True`` reproduces the original, which flipped every image when a flip
            option was ``True``; the default flips those with probability 0.5.
        void_label : int or None
            See the class parameters.

        Returns
        -------
        Augmentation
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(_TUTORIAL_KEYS))
        if unknown:
            raise ValueError(
                f"unsupported data_augmentation option(s) {unknown}: this port implements "
                f"{', '.join(_TUTORIAL_KEYS)}"
            )
        fill_mode = options.pop("fill_mode", "constant")
        if not isinstance(fill_mode, str) or fill_mode != "constant":
            raise ValueError(
                f"data_augmentation fill_mode {fill_mode!r} is not supported; accepted values: "
                f"{', '.join(repr(mode) for mode in _FILL_MODES)} (crops are padded with zeros "
                "in the image and the void label in the labels)"
            )
        return cls(flip_every_image=flip_every_image, void_label=void_label, **options)

    def __repr__(self):
        return (
            f"Augmentation(crop_size={self.crop_size}, horizontal_flip={self.horizontal_flip}, "
            f"vertical_flip={self.vertical_flip}, flip_every_image={self.flip_every_image}, "
            f"void_label={self.void_label}, fill_value={self.fill_value})"
        )

    @property
    def is_identity(self):
        """True when the augmentation never changes anything."""
        return self.crop_size is None and self.horizontal_flip == 0 and self.vertical_flip == 0

    def with_void_label(self, void_label):
        """A copy that pads labels with ``void_label``."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.void_label = int(void_label)
        return copy

    def _decide(self, probability, rng):
        if probability == 0.0:
            return False
        if probability == 1.0:
            return True
        return _random_uniform(rng) < probability

    def __call__(self, image, label, rng):
        """Augment one pair.

        Parameters
        ----------
        image : numpy.ndarray
            (C, H, W).
        label : numpy.ndarray
            (H, W).
        rng : numpy.random.Generator, numpy.random.RandomState or None
            ``None`` draws from a fresh, unseeded generator.

        Returns
        -------
        image, label : numpy.ndarray
        """
        image, label = np.asarray(image), np.asarray(label)
        if rng is None:
            rng = np.random.default_rng()
        if image.ndim != 3 or label.shape != image.shape[1:]:
            raise ValueError(
                f"expected image (C, H, W) and label (H, W) of the same H, W; got "
                f"{image.shape} and {label.shape}"
            )
        if self._decide(self.horizontal_flip, rng):
            image, label = image[:, :, ::-1], label[:, ::-1]
        if self._decide(self.vertical_flip, rng):
            image, label = image[:, ::-1, :], label[::-1, :]
        if self.crop_size is not None:
            image, label = self._crop(image, label, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _crop(self, image, label, rng):
        windows, padding = [], []
        for length, target in zip(label.shape, self.crop_size):
            if length > target:
                start = _random_start(rng, length - target + 1)
                windows.append(slice(start, start + target))
                padding.append((0, 0))
            else:
                missing = target - length
                windows.append(slice(0, length))
                padding.append((missing // 2, missing - missing // 2))
        rows, columns = windows
        image, label = image[:, rows, columns], label[rows, columns]
        if padding != [(0, 0), (0, 0)]:
            if self.void_label is None:
                raise ValueError(
                    f"a {label.shape[0]}x{label.shape[1]} image must be padded to the crop "
                    f"{self.crop_size[0]}x{self.crop_size[1]}, but no void_label was given "
                    "for the padded labels"
                )
            image = np.pad(image, [(0, 0)] + padding, constant_values=self.fill_value)
            label = np.pad(label, padding, constant_values=self.void_label)
        return image, label
