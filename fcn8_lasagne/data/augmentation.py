"""Training-time augmentation of the tutorials: affine transforms, flips, elastic warps, crops.

The tutorials pass a ``data_augmentation`` dict to fvisin/dataset_loaders, whose
``random_transform`` (modelled on Keras' ``ImageDataGenerator``) does, in this order:

1. an affine transform, when ``rotation_range``, ``height_shift_range``,
   ``width_shift_range`` or ``shear_range`` is non-zero: a rotation by ``theta`` degrees
   drawn uniformly in ``[-rotation_range, rotation_range]``, a shift by a fraction of the
   height and of the width drawn in ``[-range, range]``, a shear by an angle (radians)
   drawn in ``[-shear_range, shear_range]``, composed as rotation · shift · shear about the
   image centre and resampled by ``scipy.ndimage.affine_transform``: bilinear for the
   image, nearest neighbour for the labels, the outside filled by ``fill_mode``
   (``'constant'`` with ``cval`` in the image; ``'nearest'``, ``'reflect'`` — the edge
   pixel repeated, ``d c b a | a b c d``, NumPy's ``'symmetric'`` — or ``'wrap'``);
2. horizontal flip ``if np.random.random() < horizontal_flip``, then the same test for
   ``vertical_flip``. With ``horizontal_flip=True`` the test is ``random() < True``, and
   ``True == 1``, so **every training image is flipped every time**.
   :meth:`Augmentation.from_tutorial_dict` reads ``True`` as "flip half the time" unless
   ``flip_every_image=True`` asks for the original behaviour;
3. ``spline_warp``: an elastic deformation, a cubic B-spline displacement field on a
   ``warp_grid_size`` x ``warp_grid_size`` mesh (``warp_grid_size + 3`` control points a
   side) whose control displacements are ``warp_sigma * N(0, 1)`` pixels, the outer ring of
   control points held at zero; pixel ``p`` of the output is the input at ``p + d(p)``,
   bilinear for the image, nearest neighbour for the labels, ``fill_mode`` outside;
4. a crop to ``crop_size``, axis by axis: an axis longer than the crop gets a random window;
   an axis shorter than (or equal to) the crop is kept whole and padded **centred** (half
   the missing length before, the rest after; an odd remainder goes after) with zeros in
   the image and the void label in the labels, whatever ``fill_mode``.

Differences, on purpose (listed in ``docs/faithfulness.md``):

- the original drew the crop start with ``np.random.randint(h - crop)``, which never picks
  the last position ``h - crop``; here every start ``0 .. h - crop`` is equally likely;
- the affine transforms turn about the centre of the pixel grid, ``((h - 1) / 2,
  (w - 1) / 2)``; the original (as Keras then) used ``(h / 2 + 0.5, w / 2 + 0.5)``, one
  pixel off, so that a rotation also shifted the image by up to two pixels;
- outside pixels of the labels get the void label with ``fill_mode='constant'`` (the
  original filled them with ``cval_mask=0``, a real class); ``cval_mask`` sets another value;
- the original built the warp with SimpleITK and, handing it the control displacements
  interleaved (row, column, row, ...) where ITK expects all of one component first, did not
  hold the outer ring at zero as its code meant to; here the ring is zero. ``'wrap'`` is
  the periodic extension (SciPy's ``'grid-wrap'``; its older ``'wrap'`` repeated the edge
  sample).

The random numbers are drawn from the generator the caller passes (the batch iterator's
per-epoch stream), in the order: rotation, height shift, width shift, shear (each only
when its range is non-zero), horizontal flip, vertical flip (each only when its probability
is neither 0 nor 1), the warp's control displacements, crop row start, crop column start
(each only when that axis is longer than the crop). A dict without affine or warp options
therefore draws exactly what the crop-and-flip augmentation always drew.
"""

import math
import numbers

import numpy as np
import scipy.ndimage as ndi

__all__ = ["Augmentation", "affine_matrix", "spline_warp_field", "FILL_MODES"]

_TUTORIAL_KEYS = ("crop_size", "horizontal_flip", "vertical_flip", "fill_mode", "cval",
                  "cval_mask", "rotation_range", "height_shift_range", "width_shift_range",
                  "shear_range", "spline_warp", "warp_sigma", "warp_grid_size")
#: ``fill_mode`` → the ``scipy.ndimage`` mode that fills the outside of a resampled image.
FILL_MODES = {"constant": "constant", "nearest": "nearest", "reflect": "reflect",
              "wrap": "grid-wrap"}


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


def _non_negative(value, what, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f"in [0, {upper}]" if upper is not None else "a finite number >= 0"
        raise ValueError(f"data_augmentation {what} must be {bound}, got {value!r}")
    return float(value)


def _random_uniform(rng):
    return float(rng.random())


def _random_start(rng, n_starts):
    # numpy.random.Generator has integers(), the legacy RandomState randint().
    if hasattr(rng, "integers"):
        return int(rng.integers(0, n_starts))
    return int(rng.randint(0, n_starts))


def affine_matrix(shape, rotation=0.0, shift=(0.0, 0.0), shear=0.0):
    """The 3x3 matrix that maps an output pixel (row, column, 1) to its input position.

    Parameters
    ----------
    shape : (int, int)
        (height, width) of the image; the transform turns about ``((h - 1) / 2, (w - 1) /
        2)``.
    rotation : float
        Degrees; ``-90`` maps the output onto ``np.rot90`` of the input.
    shift : (float, float)
        (rows, columns) added to the input position: the content moves by minus this.
    shear : float
        Radians.

    Returns
    -------
    numpy.ndarray
        float64 (3, 3): rotation · shift · shear, conjugated by the move to the centre.
    """
    theta = math.radians(rotation)
    rotate = np.array([[math.cos(theta), -math.sin(theta), 0.0],
                       [math.sin(theta), math.cos(theta), 0.0],
                       [0.0, 0.0, 1.0]])
    translate = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]], [0.0, 0.0, 1.0]])
    shear_matrix = np.array([[1.0, -math.sin(shear), 0.0],
                             [0.0, math.cos(shear), 0.0],
                             [0.0, 0.0, 1.0]])
    centre_row, centre_column = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    to_centre = np.array([[1.0, 0.0, centre_row], [0.0, 1.0, centre_column], [0.0, 0.0, 1.0]])
    from_centre = np.array([[1.0, 0.0, -centre_row], [0.0, 1.0, -centre_column],
                            [0.0, 0.0, 1.0]])
    return to_centre @ rotate @ translate @ shear_matrix @ from_centre


def spline_warp_field(shape, control_displacements):
    """The displacement of every pixel under a cubic B-spline warp.

    Parameters
    ----------
    shape : (int, int)
        (height, width).
    control_displacements : numpy.ndarray
        (g + 3, g + 3, 2): the (row, column) displacement, in pixels, of each control point
        of a ``g`` x ``g`` mesh laid over the image (from the outer edge of the first pixel
        to the outer edge of the last, control point ``k`` at mesh position ``k - 1``).

    Returns
    -------
    numpy.ndarray
        float64 (2, height, width): row and column displacement of each pixel, the sum of
        the control displacements weighted by the cubic B-spline of their distance.
    """
    coefficients = np.asarray(control_displacements, dtype=np.float64)
    grid_size = coefficients.shape[0] - 3
    if coefficients.ndim != 3 or grid_size < 1 or coefficients.shape[1:] != \
            (grid_size + 3, 2):
        raise ValueError(f"control_displacements must be (g + 3, g + 3, 2) with g >= 1, got "
                         f"shape {coefficients.shape}")
    # The 2-D cubic B-spline is the product of two 1-D ones, so the field is
    # weights_rows @ coefficients @ weights_columns.T, each weight matrix holding the 1-D
    # basis functions (SciPy's order-3 spline of a unit coefficient, without the
    # prefilter) at the pixels' mesh positions.
    weights = []
    for length in shape:
        positions = (np.arange(length) + 0.5) * (grid_size / length) + 1.0
        weights.append(np.stack(
            [ndi.map_coordinates(unit, positions[None], order=3, prefilter=False,
                                 mode="grid-constant") for unit in np.eye(grid_size + 3)],
            axis=1))
    rows, columns = weights
    return np.stack([rows @ coefficients[:, :, component] @ columns.T
                     for component in range(2)])


class Augmentation:
    """Random affine transforms, flips, elastic warps and a random crop for one pair.

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
        The label given to padded pixels (and, with ``fill_mode='constant'``, to the
        outside of transformed labels). Needed when an image can be smaller than the crop
        or a constant fill is used; :class:`~fcn8_lasagne.data.iteration.BatchIterator`
        fills it in from the dataset when left ``None``.
    fill_value : float
        The image value of pixels padded by the crop (the original: 0).
    rotation_range : float
        Degrees, 0 to 180.
    height_shift_range, width_shift_range : float
        Fractions of the height / width, 0 to 1.
    shear_range : float
        Radians.
    spline_warp : bool
    warp_sigma : float
        Standard deviation of the warp's control displacements, in pixels.
    warp_grid_size : int
        The warp's mesh has ``warp_grid_size`` cells a side.
    fill_mode : {'constant', 'nearest', 'reflect', 'wrap'}
        How the affine transforms and the warp fill what comes from outside the image.
    cval : float
        The image value outside, with ``fill_mode='constant'``.
    label_cval : int or None
        The label outside, with ``fill_mode='constant'``; ``None``: ``void_label``.

    Notes
    -----
    Called as ``augmentation(image, label, rng)`` with image (C, H, W), label (H, W) and a
    ``numpy.random.Generator`` (or ``RandomState``); returns new arrays of the same dtypes.
    The order of the operations and of the random draws is in the module notes.
    """

    def __init__(self, crop_size=None, horizontal_flip=0.0, vertical_flip=0.0,
                 flip_every_image=False, void_label=None, fill_value=0.0, rotation_range=0.0,
                 height_shift_range=0.0, width_shift_range=0.0, shear_range=0.0,
                 spline_warp=False, warp_sigma=0.1, warp_grid_size=3, fill_mode="constant",
                 cval=0.0, label_cval=None):
        self.crop_size = _crop_size_pair(crop_size)
        self.flip_every_image = bool(flip_every_image)
        self.horizontal_flip = _flip_probability(horizontal_flip, flip_every_image,
                                                 "horizontal_flip")
        self.vertical_flip = _flip_probability(vertical_flip, flip_every_image, "vertical_flip")
        self.void_label = None if void_label is None else int(void_label)
        self.fill_value = float(fill_value)
        self.rotation_range = _non_negative(rotation_range, "rotation_range", 180)
        self.height_shift_range = _non_negative(height_shift_range, "height_shift_range", 1)
        self.width_shift_range = _non_negative(width_shift_range, "width_shift_range", 1)
        self.shear_range = _non_negative(shear_range, "shear_range")
        if not isinstance(spline_warp, (bool, np.bool_)):
            raise ValueError(f"data_augmentation spline_warp must be True or False, got "
                             f"{spline_warp!r}")
        self.spline_warp = bool(spline_warp)
        self.warp_sigma = _non_negative(warp_sigma, "warp_sigma")
        if isinstance(warp_grid_size, bool) or not isinstance(warp_grid_size, numbers.Integral) \
                or warp_grid_size < 1:
            raise ValueError(f"data_augmentation warp_grid_size must be a positive integer, "
                             f"got {warp_grid_size!r}")
        self.warp_grid_size = int(warp_grid_size)
        if not isinstance(fill_mode, str) or fill_mode not in FILL_MODES:
            raise ValueError(
                f"data_augmentation fill_mode {fill_mode!r} is not supported; accepted values: "
                f"{', '.join(repr(mode) for mode in FILL_MODES)}")
        self.fill_mode = fill_mode
        if isinstance(cval, bool) or not isinstance(cval, numbers.Real):
            raise ValueError(f"data_augmentation cval must be a number, got {cval!r}")
        self.cval = float(cval)
        if label_cval is not None and (isinstance(label_cval, bool)
                                       or not isinstance(label_cval, numbers.Integral)):
            raise ValueError(f"data_augmentation cval_mask must be an integer label, got "
                             f"{label_cval!r}")
        self.label_cval = None if label_cval is None else int(label_cval)

    @classmethod
    def from_tutorial_dict(cls, options, flip_every_image=False, void_label=None):
        """Build from the ``data_augmentation`` dict of ``train_fcn8.py`` or
        ``train_unet.py``.

        Parameters
        ----------
        options : dict
            Keys among 'crop_size', 'horizontal_flip', 'vertical_flip', 'fill_mode',
            'cval', 'cval_mask', 'rotation_range', 'height_shift_range',
            'width_shift_range', 'shear_range', 'spline_warp', 'warp_sigma' and
            'warp_grid_size', with dataset_loaders' meanings and defaults (but
            ``fill_mode`` defaults to 'constant', which is what a crop-only dict means). An
            empty dict means no augmentation.
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
        if "cval_mask" in options:
            options["label_cval"] = options.pop("cval_mask")
        return cls(flip_every_image=flip_every_image, void_label=void_label, **options)

    def __repr__(self):
        return (
            f"Augmentation(crop_size={self.crop_size}, horizontal_flip={self.horizontal_flip}, "
            f"vertical_flip={self.vertical_flip}, flip_every_image={self.flip_every_image}, "
            f"void_label={self.void_label}, fill_value={self.fill_value}, "
            f"rotation_range={self.rotation_range}, "
            f"height_shift_range={self.height_shift_range}, "
            f"width_shift_range={self.width_shift_range}, shear_range={self.shear_range}, "
            f"spline_warp={self.spline_warp}, warp_sigma={self.warp_sigma}, "
            f"warp_grid_size={self.warp_grid_size}, fill_mode={self.fill_mode!r}, "
            f"cval={self.cval}, label_cval={self.label_cval})"
        )

    @property
    def has_affine(self):
        """True when an affine transform is drawn for every image."""
        return bool(self.rotation_range or self.height_shift_range or self.width_shift_range
                    or self.shear_range)

    @property
    def is_identity(self):
        """True when the augmentation never changes anything."""
        return (self.crop_size is None and self.horizontal_flip == 0
                and self.vertical_flip == 0 and not self.has_affine and not self.spline_warp)

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

    def _symmetric_draw(self, bound, rng):
        return float(rng.uniform(-bound, bound)) if bound else 0.0

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
        if self.has_affine:
            rotation = self._symmetric_draw(self.rotation_range, rng)
            shift = (self._symmetric_draw(self.height_shift_range, rng) * label.shape[0],
                     self._symmetric_draw(self.width_shift_range, rng) * label.shape[1])
            shear = self._symmetric_draw(self.shear_range, rng)
            matrix = affine_matrix(label.shape, rotation, shift, shear)
            image, label = self.apply_affine(image, label, matrix)
        if self._decide(self.horizontal_flip, rng):
            image, label = image[:, :, ::-1], label[:, ::-1]
        if self._decide(self.vertical_flip, rng):
            image, label = image[:, ::-1, :], label[::-1, :]
        if self.spline_warp:
            size = self.warp_grid_size + 3
            control = self.warp_sigma * rng.standard_normal((size, size, 2))
            control[[0, -1], :, :] = 0.0
            control[:, [0, -1], :] = 0.0
            image, label = self.apply_displacement(
                image, label, spline_warp_field(label.shape, control))
        if self.crop_size is not None:
            image, label = self._crop(image, label, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _outside_label(self):
        if self.fill_mode != "constant":
            return 0  # unused by the other modes
        if self.label_cval is not None:
            return self.label_cval
        if self.void_label is None:
            raise ValueError(
                "fill_mode='constant' fills the outside of transformed labels with the void "
                "label, but no void_label (or cval_mask) was given")
        return self.void_label

    def apply_affine(self, image, label, matrix):
        """Resample a pair through ``matrix`` (see :func:`affine_matrix`): the image
        bilinearly, the labels by nearest neighbour, the outside by ``fill_mode``."""
        mode = FILL_MODES[self.fill_mode]
        label_cval = self._outside_label()
        linear, offset = matrix[:2, :2], matrix[:2, 2]
        image = np.stack([ndi.affine_transform(channel, linear, offset, order=1, mode=mode,
                                               cval=self.cval) for channel in image])
        label = ndi.affine_transform(label, linear, offset, order=0, mode=mode,
                                     cval=label_cval)
        return image, label

    def apply_displacement(self, image, label, displacement):
        """Resample a pair so that output pixel ``p`` is the input at ``p +
        displacement[:, p]``: the image bilinearly, the labels by nearest neighbour."""
        mode = FILL_MODES[self.fill_mode]
        label_cval = self._outside_label()
        rows, columns = np.meshgrid(np.arange(label.shape[0]), np.arange(label.shape[1]),
                                    indexing="ij")
        positions = np.stack([rows + displacement[0], columns + displacement[1]])
        image = np.stack([ndi.map_coordinates(channel, positions, order=1, mode=mode,
                                              cval=self.cval) for channel in image])
        label = ndi.map_coordinates(label, positions, order=0, mode=mode, cval=label_cval)
        return image, label

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
