"""A small synthetic multi-class set in PASCAL VOC's layout, generated on demand.

Each picture is a textured background (smooth colour noise with a gradient) with one to four
shapes of five classes -- disc, square, triangle, ring, cross -- of varied size, position,
colour and shading. Every class has its own mean colour, but the spreads overlap each other
and the background, so the shape (not the colour alone) decides the class. As in VOC, a thin
band along every object's outline is void (255), and the labels are palette PNGs.

Files are written in VOC's layout and read by :class:`~fcn8_lasagne.data.voc.VOCSegmentation`::

    <root>/VOC2012/JPEGImages/<nnnn>.jpg
    <root>/VOC2012/SegmentationClass/<nnnn>.png
    <root>/VOC2012/ImageSets/Segmentation/{train,val}.txt

Image ``i`` depends only on ``(seed, i)``; the same parameters give the same files. The
defaults (24 train / 8 val images of 64x64) let a ResNet-50 FCN train for an epoch on a
two-core CPU in about a minute.
"""

import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter

from .synthetic import ensure_generated
from .voc import VOCSegmentation, voc_palette

__all__ = ["SYNTHETIC_VOC_CLASS_NAMES", "SYNTHETIC_VOC_DEFAULTS", "make_synthetic_voc",
           "ensure_synthetic_voc", "render_synthetic_voc", "SyntheticVOC"]

SYNTHETIC_VOC_CLASS_NAMES = ("background", "disc", "square", "triangle", "ring", "cross")
SYNTHETIC_VOC_DEFAULTS = {"n_train": 24, "n_val": 8, "image_size": (64, 64), "seed": 0}
GENERATOR_VERSION = 1
_VOID = 255
_CLASS_RGB = {
    1: (200.0, 80.0, 70.0),
    2: (70.0, 160.0, 80.0),
    3: (80.0, 90.0, 200.0),
    4: (190.0, 170.0, 60.0),
    5: (160.0, 70.0, 170.0),
}


def _shape_mask(kind, rows, columns, centre, radius, angle):
    y, x = rows - centre[0], columns - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * x + sin * y, -sin * x + cos * y
    if kind == 1:
        return u ** 2 + v ** 2 <= radius ** 2
    if kind == 2:
        return (np.abs(u) <= radius * 0.85) & (np.abs(v) <= radius * 0.85)
    if kind == 3:
        return (v <= radius * 0.6) & (v >= -radius + 1.7 * np.abs(u))
    if kind == 4:
        distance = np.sqrt(u ** 2 + v ** 2)
        return (distance <= radius) & (distance >= radius * 0.55)
    arm = radius * 0.3
    return (((np.abs(u) <= arm) & (np.abs(v) <= radius))
            | ((np.abs(v) <= arm) & (np.abs(u) <= radius)))


def render_synthetic_voc(rng, image_size, max_shapes=4):
    """One picture and its label map.

    Parameters
    ----------
    rng : numpy.random.Generator
    image_size : (int, int)
        (height, width), each at least 16.
    max_shapes : int

    Returns
    -------
    image : numpy.ndarray
        uint8 (H, W, 3).
    labels : numpy.ndarray
        uint8 (H, W): 0 background, 1..5 the shapes, 255 void outlines.
    """
    height, width = image_size
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    base = rng.uniform(90.0, 170.0, 3)
    gradient = rng.uniform(-40.0, 40.0, 3)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * columns / width + np.sin(direction) * rows / height)[..., None]
    texture = gaussian_filter(rng.standard_normal((height, width, 3)), (1.5, 1.5, 0))
    image = base + gradient * ramp + 60.0 * texture
    labels = np.zeros((height, width), dtype=np.uint8)
    void = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.integers(1, 6))
        radius = rng.uniform(0.12, 0.28) * min(height, width)
        centre = (rng.uniform(radius * 0.6, height - radius * 0.6),
                  rng.uniform(radius * 0.6, width - radius * 0.6))
        mask = _shape_mask(kind, rows, columns, centre, radius, rng.uniform(0, np.pi))
        if mask.sum() < 12:
            continue
        colour = np.asarray(_CLASS_RGB[kind]) + rng.normal(0.0, 25.0, 3)
        shading = 1.0 + 0.25 * (rows - centre[0]) / max(radius, 1.0)
        shaded = colour[None, None, :] * np.clip(shading, 0.6, 1.4)[..., None]
        shaded = shaded + 20.0 * texture
        image[mask] = shaded[mask]
        labels[mask] = kind
        outline = binary_dilation(mask, iterations=1) & ~binary_erosion(mask, iterations=1)
        void[mask] = False
        void |= outline
    labels[void] = _VOID
    return np.clip(np.round(image), 0, 255).astype(np.uint8), labels


def _check_parameters(n_train, n_val, image_size, seed):
    for name, value in (("n_train", n_train), ("n_val", n_val)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    size = tuple(int(side) for side in image_size)
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"image_size must be (height, width), each at least 16, got "
                         f"{image_size!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {"n_train": int(n_train), "n_val": int(n_val), "image_size": list(size),
            "seed": int(seed)}


def make_synthetic_voc(root, n_train=24, n_val=8, image_size=(64, 64), seed=0):
    """Write the synthetic set in VOC's layout under ``root/VOC2012``.

    Returns
    -------
    Path
        ``root``.
    """
    from pathlib import Path

    parameters = _check_parameters(n_train, n_val, image_size, seed)
    voc = Path(root) / "VOC2012"
    image_folder, label_folder = voc / "JPEGImages", voc / "SegmentationClass"
    list_folder = voc / "ImageSets" / "Segmentation"
    for folder in (image_folder, label_folder, list_folder):
        folder.mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    names = [f"{index:04d}" for index in range(n_train + n_val)]
    for index, name in enumerate(names):
        rng = np.random.default_rng([parameters["seed"], index])
        image, labels = render_synthetic_voc(rng, tuple(parameters["image_size"]))
        Image.fromarray(image).save(image_folder / f"{name}.jpg", quality=95)
        label_image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
        label_image.putpalette(palette)
        label_image.save(label_folder / f"{name}.png")
    (list_folder / "train.txt").write_text("".join(f"{n}\n" for n in names[:n_train]))
    (list_folder / "val.txt").write_text("".join(f"{n}\n" for n in names[n_train:]))
    return Path(root)


def ensure_synthetic_voc(root=None, n_train=24, n_val=8, image_size=(64, 64), seed=0):
    """Generate the set once (see :func:`~fcn8_lasagne.data.synthetic.ensure_generated`)
    and return its root."""
    parameters = _check_parameters(n_train, n_val, image_size, seed)
    marker = {"generator": "fcn8_lasagne synthetic voc", "version": GENERATOR_VERSION,
              "parameters": parameters}
    return ensure_generated(root, marker, "synthetic-voc",
                            lambda folder: make_synthetic_voc(folder, **parameters))


class SyntheticVOC(VOCSegmentation):
    """One split of the synthetic VOC-layout set, generated on first use.

    Parameters
    ----------
    root : str, Path or None
        See :func:`ensure_synthetic_voc`.
    split : str
        'train', 'valid' (or 'val') or 'test' (= val, as for VOC).
    train_from_0_255 : bool
    n_train, n_val, image_size, seed
        See :func:`make_synthetic_voc`.
    """

    name = "synthetic_voc"

    def __init__(self, root=None, split="train", train_from_0_255=False, n_train=24, n_val=8,
                 image_size=(64, 64), seed=0):
        root = ensure_synthetic_voc(root, n_train=n_train, n_val=n_val, image_size=image_size,
                                    seed=seed)
        super().__init__(root, split, train_from_0_255=train_from_0_255,
                         class_names=SYNTHETIC_VOC_CLASS_NAMES)
