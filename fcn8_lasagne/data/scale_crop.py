"""The dilated-ResNet FCNs' input pipeline: random scale-crop-flip, val resize-crop, ImageNet
normalisation.

Both originals train on random rescales of the image (an integer size drawn from
``[int(0.5 * base_size), int(2.0 * base_size)]``), a horizontal flip with probability 0.5 and
a ``crop_size`` random crop, padding on the right and bottom when the rescaled image is
smaller; then ``ToTensor`` and ``Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)``. They differ
in the details, which ``convention`` selects:

=====================  ========================================  ===============================
step                   ``'gluoncv'`` (``data/segbase.py``)        ``'torchvision'`` (references/
                                                                  segmentation ``presets.py``)
=====================  ========================================  ===============================
order                  flip, scale, pad, crop, blur               scale, flip, pad, crop
scaled side            the **long** side; the other               the **short** side; the other
                       ``int(x * size / long + 0.5)``             ``int(size * long / short)``
label padding          0 (background)                             255 (void)
Gaussian blur          p 0.5, radius U(0, 1) (PIL)                none
val / eval             short side -> ``crop_size`` (other side    short side -> ``base_size``,
                       truncated), centre crop ``crop_size``      whole image
=====================  ========================================  ===============================

Images are resized with Pillow's bilinear filter on 8-bit RGB and label maps with nearest
neighbour, as both originals do. The transforms take and return the arrays of this package's
datasets: image float32 (3, H, W) in [0, 1], label int32 (H, W) with void ``void_label``;
they return the normalised image. Called as ``transform(image, label, rng)`` they plug into
:class:`~fcn8_lasagne.data.BatchIterator` as its ``augmentation``.
"""

import numpy as np
from PIL import Image, ImageFilter

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize_imagenet",
    "RandomScaleCropFlip",
    "ResizeCenterCrop",
    "SCALE_CROP_CONVENTIONS",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SCALE_CROP_CONVENTIONS = ("gluoncv", "torchvision")


def normalize_imagenet(image):
    """``(image - IMAGENET_MEAN) / IMAGENET_STD`` per channel of a (3, H, W) or (B, 3, H, W)
    image in [0, 1] (float32)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected an RGB image (3, H, W) or batch (B, 3, H, W), got shape "
                         f"{image.shape}")
    shape = (3, 1, 1)
    return (image - IMAGENET_MEAN.reshape(shape)) / IMAGENET_STD.reshape(shape)


def _check_size(value, what):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _check_convention(convention):
    if convention not in SCALE_CROP_CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(SCALE_CROP_CONVENTIONS)}, "
                         f"got {convention!r}")
    return convention


def _to_pil(image, label):
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[0] != 3 or label.shape != image.shape[1:]:
        raise ValueError(f"expected an RGB image (3, H, W) and a label map (H, W) of the same "
                         f"size, got {image.shape} and {label.shape}")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"expected image values in [0, 1] (the datasets' default, not "
                         f"-train_from_0_255), got values from {low:g} to {high:g}")
    pixels = np.round(image.transpose(1, 2, 0) * 255.0).astype(np.uint8)
    return Image.fromarray(pixels), Image.fromarray(label.astype(np.int32))


def _from_pil(image, label, normalize):
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)
    if normalize:
        pixels = normalize_imagenet(pixels)
    return np.ascontiguousarray(pixels, dtype=np.float32), np.asarray(label, dtype=np.int32)


def _resize(image, label, width, height):
    return (image.resize((width, height), Image.BILINEAR),
            label.resize((width, height), Image.NEAREST))


def _pad_right_bottom(image, label, size, label_fill):
    width, height = image.size
    pad_width, pad_height = max(size - width, 0), max(size - height, 0)
    if not (pad_width or pad_height):
        return image, label
    padded_image = Image.new("RGB", (width + pad_width, height + pad_height), (0, 0, 0))
    padded_image.paste(image, (0, 0))
    padded_label = Image.new("I", padded_image.size, int(label_fill))
    padded_label.paste(label, (0, 0))
    return padded_image, padded_label


def _integer(rng, low, high):
    """An integer in [low, high] inclusive (Python's ``random.randint``)."""
    return int(rng.integers(low, high + 1))


class RandomScaleCropFlip:
    """The training transform: random rescale, horizontal flip, pad, random crop (and blur).

    Parameters
    ----------
    base_size : int
        The rescaled size is drawn from ``[int(0.5 * base_size), int(2.0 * base_size)]``
        (both originals: 520).
    crop_size : int
        Side of the square crop (480).
    convention : {'gluoncv', 'torchvision'}
        See the module table.
    void_label : int or None
        The label torchvision pads with (255 there; give this package's void id, the
        dataset's ``void_label``). Gluon-CV pads labels with 0 whatever this is.
    normalize : bool
        Return ImageNet-normalised images (True) or values in [0, 1].

    Notes
    -----
    Random numbers are drawn from the ``rng`` of each call in the order of the original's
    steps: the flip (``rng.random() < 0.5``), the size, the crop column and row, then (Gluon-CV)
    the blur decision and radius.
    """

    def __init__(self, base_size=520, crop_size=480, convention="gluoncv", void_label=None,
                 normalize=True):
        self.base_size = _check_size(base_size, "base_size")
        self.crop_size = _check_size(crop_size, "crop_size")
        self.convention = _check_convention(convention)
        self.void_label = None if void_label is None else int(void_label)
        self.normalize = bool(normalize)
        low, high = int(0.5 * self.base_size), int(2.0 * self.base_size)
        if low < 1:
            raise ValueError(f"base_size {self.base_size} gives scaled sizes from {low}: "
                             "it must be at least 2")
        self.size_range = (low, high)

    def __repr__(self):
        return (f"RandomScaleCropFlip(base_size={self.base_size}, crop_size={self.crop_size}, "
                f"convention={self.convention!r}, void_label={self.void_label}, "
                f"normalize={self.normalize})")

    def with_void_label(self, void_label):
        """A copy that pads torchvision-style labels with ``void_label``."""
        return type(self)(self.base_size, self.crop_size, self.convention, void_label,
                          self.normalize)

    def __call__(self, image, label, rng):
        if rng is None:
            rng = np.random.default_rng()
        image, label = _to_pil(image, label)
        if self.convention == "gluoncv":
            image, label = self._gluoncv(image, label, rng)
        else:
            image, label = self._torchvision(image, label, rng)
        return _from_pil(image, label, self.normalize)

    def _flip(self, image, label, rng):
        if rng.random() < 0.5:
            return (image.transpose(Image.FLIP_LEFT_RIGHT),
                    label.transpose(Image.FLIP_LEFT_RIGHT))
        return image, label

    def _crop(self, image, label, rng):
        width, height = image.size
        x1 = _integer(rng, 0, width - self.crop_size)
        y1 = _integer(rng, 0, height - self.crop_size)
        box = (x1, y1, x1 + self.crop_size, y1 + self.crop_size)
        return image.crop(box), label.crop(box)

    def _gluoncv(self, image, label, rng):
        image, label = self._flip(image, label, rng)
        long_size = _integer(rng, *self.size_range)
        width, height = image.size
        if height > width:
            new_height, new_width = long_size, int(1.0 * width * long_size / height + 0.5)
        else:
            new_width, new_height = long_size, int(1.0 * height * long_size / width + 0.5)
        image, label = _resize(image, label, max(new_width, 1), max(new_height, 1))
        image, label = _pad_right_bottom(image, label, self.crop_size, 0)
        image, label = self._crop(image, label, rng)
        if rng.random() < 0.5:
            image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.random())))
        return image, label

    def _torchvision(self, image, label, rng):
        if self.void_label is None:
            raise ValueError("the torchvision convention pads labels with the void label, but "
                             "no void_label was given")
        short_size = _integer(rng, *self.size_range)
        width, height = image.size
        if width <= height:
            new_width, new_height = short_size, int(short_size * height / width)
        else:
            new_height, new_width = short_size, int(short_size * width / height)
        image, label = _resize(image, label, new_width, new_height)
        image, label = self._flip(image, label, rng)
        image, label = _pad_right_bottom(image, label, self.crop_size, self.void_label)
        return self._crop(image, label, rng)


class ResizeCenterCrop:
    """The validation transform (deterministic; ``rng`` is ignored).

    Parameters
    ----------
    base_size, crop_size : int
    convention : {'gluoncv', 'torchvision'}
        Gluon-CV: short side to ``crop_size``, the other ``int(x * crop_size / short)``,
        then the centre ``crop_size`` square (offsets ``int(round((w - crop_size) / 2))``).
        torchvision: short side to ``base_size``, the whole image (sizes then vary with the
        aspect ratio: batch size 1 for images of mixed shapes).
    normalize : bool
    """

    def __init__(self, base_size=520, crop_size=480, convention="gluoncv", normalize=True):
        self.base_size = _check_size(base_size, "base_size")
        self.crop_size = _check_size(crop_size, "crop_size")
        self.convention = _check_convention(convention)
        self.normalize = bool(normalize)

    def __repr__(self):
        return (f"ResizeCenterCrop(base_size={self.base_size}, crop_size={self.crop_size}, "
                f"convention={self.convention!r}, normalize={self.normalize})")

    def __call__(self, image, label, rng=None):
        image, label = _to_pil(image, label)
        width, height = image.size
        if self.convention == "gluoncv":
            short_size = self.crop_size
            if width > height:
                new_height, new_width = short_size, int(1.0 * width * short_size / height)
            else:
                new_width, new_height = short_size, int(1.0 * height * short_size / width)
            image, label = _resize(image, label, new_width, new_height)
            x1 = int(round((new_width - self.crop_size) / 2.0))
            y1 = int(round((new_height - self.crop_size) / 2.0))
            box = (x1, y1, x1 + self.crop_size, y1 + self.crop_size)
            image, label = image.crop(box), label.crop(box)
        else:
            short_size = self.base_size
            if width <= height:
                new_width, new_height = short_size, int(short_size * height / width)
            else:
                new_height, new_width = short_size, int(short_size * width / height)
            image, label = _resize(image, label, new_width, new_height)
        return _from_pil(image, label, self.normalize)
