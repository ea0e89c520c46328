"""A small synthetic stand-in for Polyps912, generated on demand: the project's default data.

The frames imitate colonoscopy images closely enough to exercise the whole pipeline: a
pinkish mucosa with smooth texture, a colour gradient, vignetting and thin darker folds; one
polyp (two in one frame out of three), a large elliptical dome of varied size, position,
colour and lighting with a mottled surface and a small specular highlight; and black frame
corners and border, labelled void. The polyps cover about a fifth of the labelled pixels
and are clearly redder and darker than the mucosa, so that the full FCN-8 trained from a
Glorot start learns to segment them within the few hundred Adam steps that ten minutes on a
two-core CPU allow; the folds, the vignetting, the highlights and the lit side of a dome
overlap their colours, so a pixel's colour alone does not decide its class.

Files are written in the Polyps912 layout, with the ``masks2`` value convention (0
background, 1 polyp, 2 void), so they are read by :class:`~fcn8_lasagne.data.Polyps912`::

    <root>/{train,valid,test}/images/<nnnn>.bmp
    <root>/{train,valid,test}/masks2/<nnnn>.tif

Frame ``i`` of split ``s`` depends only on ``(seed, s, i)``: the same parameters give
byte-identical files, and more frames leave the first ones unchanged.

The defaults are 48 / 12 / 12 frames of 64x80 pixels (smaller frames save little: the
``pad=100`` of FCN-8's first convolution makes it see 262x278 pixels for a 64x80 frame).
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy.ndimage import gaussian_filter

from .polyps912 import Polyps912

__all__ = [
    "make_synthetic_polyps",
    "ensure_synthetic_polyps",
    "ensure_generated",
    "render_synthetic_polyp",
    "default_cache_dir",
    "SyntheticPolyps",
    "SYNTHETIC_DEFAULTS",
]

# Bump when the pictures change, so that cached copies made by older code are not reused.
GENERATOR_VERSION = 2
MARKER_FILE = "synthetic.json"
SYNTHETIC_DEFAULTS = {
    "n_train": 48,
    "n_valid": 12,
    "n_test": 12,
    "image_size": (64, 80),
    "seed": 0,
}
_SPLITS = ("train", "valid", "test")
_BACKGROUND, _POLYP, _VOID = 0, 1, 2

_MUCOSA_RGB = np.array([205.0, 132.0, 122.0])
_POLYP_RGB = np.array([165.0, 58.0, 52.0])
_FOLD_RGB = np.array([150.0, 78.0, 72.0])
_HIGHLIGHT_RGB = np.array([245.0, 240.0, 230.0])


def _unit_noise(rng, shape, sigma):
    noise = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return noise / max(float(noise.std()), 1e-12)


def _void_region(height, width, rng):
    rows, columns = np.mgrid[0:height, 0:width]
    border = int(rng.integers(1, 3))
    corner = max(3, int(round(min(height, width) * rng.uniform(0.12, 0.2))))
    # Distance of each pixel to the nearest frame corner along the diagonal.
    to_corner = np.minimum.reduce([
        rows + columns,
        rows + (width - 1 - columns),
        (height - 1 - rows) + columns,
        (height - 1 - rows) + (width - 1 - columns),
    ])
    on_border = ((rows < border) | (rows >= height - border)
                 | (columns < border) | (columns >= width - border))
    return on_border | (to_corner < corner)


def render_synthetic_polyp(rng, image_size, max_polyps=2):
    """Draw one synthetic frame and its labels.

    Parameters
    ----------
    rng : numpy.random.Generator
    image_size : (int, int)
        (height, width), each at least 16.
    max_polyps : int
        A frame holds one polyp with probability 2/3, else 2 to ``max_polyps``.

    Returns
    -------
    image : numpy.ndarray
        uint8 (H, W, 3) RGB.
    labels : numpy.ndarray
        uint8 (H, W): 0 background, 1 polyp, 2 void.
    """
    height, width = (int(length) for length in image_size)
    if min(height, width) < 16:
        raise ValueError(f"image_size must be at least 16x16, got {height}x{width}")
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    y = (rows + 0.5) / height - 0.5
    x = (columns + 0.5) / width - 0.5
    scale = min(height, width)

    # Mucosa: base colour, a gradient in a random direction, smooth texture, vignetting.
    mucosa = _MUCOSA_RGB + rng.uniform(-15, 15, 3)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(angle) * x + np.sin(angle) * y
    image = mucosa + gradient[..., None] * rng.uniform(30, 60) * np.array([1.0, 0.7, 0.6])
    coarse = _unit_noise(rng, (height, width), scale * rng.uniform(0.06, 0.12))
    fine = _unit_noise(rng, (height, width), scale * 0.02)
    image += coarse[..., None] * rng.uniform(8, 14) * np.array([1.0, 0.85, 0.8])
    image += fine[..., None] * 4.0

    # Folds: thin wavy darker bands that are not polyps.
    for _ in range(int(rng.integers(1, 3))):
        fold_angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.35, 0.35)
        across = -np.sin(fold_angle) * x + np.cos(fold_angle) * y - offset
        along = np.cos(fold_angle) * x + np.sin(fold_angle) * y
        across = across + 0.04 * np.sin(along * rng.uniform(8, 16) + rng.uniform(0, 2 * np.pi))
        weight = np.exp(-np.square(across / rng.uniform(0.015, 0.03))) * rng.uniform(0.3, 0.5)
        image += weight[..., None] * (_FOLD_RGB - image)

    labels = np.zeros((height, width), dtype=np.uint8)
    single = max_polyps == 1 or rng.uniform() < 2 / 3
    n_polyps = 1 if single else int(rng.integers(2, max_polyps + 1))
    # Mottled surface (the pit pattern) shared by the polyps of the frame.
    pits = _unit_noise(rng, (height, width), scale * 0.025)
    for _ in range(n_polyps):
        centre_y, centre_x = rng.uniform(-0.2, 0.2, 2)
        semi_major = rng.uniform(0.2, 0.34) * scale
        semi_minor = semi_major * rng.uniform(0.7, 1.0)
        tilt = rng.uniform(0, np.pi)
        dy, dx = (y - centre_y) * height, (x - centre_x) * width
        along = (np.cos(tilt) * dx + np.sin(tilt) * dy) / semi_major
        across = (-np.sin(tilt) * dx + np.cos(tilt) * dy) / semi_minor
        radius2 = np.square(along) + np.square(across)
        inside = radius2 <= 1.0
        # A dome lit from a random side: brighter on top, darker at the rim.
        light = rng.uniform(0, 2 * np.pi)
        dome = np.sqrt(np.clip(1.0 - radius2, 0.0, 1.0))
        shading = np.clip(
            0.65 + 0.4 * dome - 0.15 * (np.cos(light) * along + np.sin(light) * across), 0.5, 1.15
        )
        colour = mucosa + rng.uniform(0.85, 1.0) * (_POLYP_RGB + rng.uniform(-12, 12, 3) - mucosa)
        polyp = (colour * shading[..., None] + coarse[..., None] * 4.0
                 + pits[..., None] * 10.0 * np.array([1.0, 0.6, 0.6]))
        opacity = rng.uniform(0.9, 1.0)
        image[inside] = (1 - opacity) * image[inside] + opacity * polyp[inside]
        shine = np.square(along + 0.4 * np.cos(light)) + np.square(across + 0.4 * np.sin(light))
        highlight = inside & (shine < rng.uniform(0.01, 0.03))
        image[highlight] = 0.3 * image[highlight] + 0.7 * _HIGHLIGHT_RGB
        labels[inside] = _POLYP

    # Light falls off towards the edges of the frame.
    image *= (1.0 - 0.6 * (np.square(x) + np.square(y)))[..., None]

    void = _void_region(height, width, rng)
    image[void] = rng.uniform(0, 6, (int(void.sum()), 3))
    labels[void] = _VOID
    return np.clip(np.round(image), 0, 255).astype(np.uint8), labels


def _check_parameters(n_train, n_valid, n_test, image_size, seed):
    counts = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test}
    for what, count in counts.items():
        if int(count) != count or count < 1:
            raise ValueError(f"{what} must be a positive integer, got {count!r}")
    image_size = tuple(int(length) for length in image_size)
    if len(image_size) != 2 or min(image_size) < 16:
        raise ValueError(f"image_size must be (height, width), each >= 16; got {image_size}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {
        "n_train": int(n_train),
        "n_valid": int(n_valid),
        "n_test": int(n_test),
        "image_size": list(image_size),
        "seed": int(seed),
    }


def make_synthetic_polyps(root, n_train=48, n_valid=12, n_test=12, image_size=(64, 80), seed=0):
    """Write a synthetic two-class polyp dataset in the Polyps912 layout.

    Parameters
    ----------
    root : str or Path
        Created if missing; it must not already hold a ``train``, ``valid`` or ``test``
        folder.
    n_train, n_valid, n_test : int
        Frames per split.
    image_size : (int, int)
        (height, width) of every frame.
    seed : int
        Non-negative; frame ``i`` of split ``s`` is drawn from ``(seed, s, i)``.

    Returns
    -------
    Path
        ``root``.
    """
    parameters = _check_parameters(n_train, n_valid, n_test, image_size, seed)
    root = Path(root)
    for split in _SPLITS:
        if (root / split).exists():
            raise FileExistsError(f"{root / split} already exists; choose an empty root")
    counts = (parameters["n_train"], parameters["n_valid"], parameters["n_test"])
    for split_number, (split, count) in enumerate(zip(_SPLITS, counts)):
        image_folder = root / split / "images"
        mask_folder = root / split / "masks2"
        image_folder.mkdir(parents=True)
        mask_folder.mkdir(parents=True)
        for index in range(count):
            rng = np.random.default_rng([parameters["seed"], split_number, index])
            image, labels = render_synthetic_polyp(rng, parameters["image_size"])
            name = f"{index + 1:04d}"
            Image.fromarray(image).save(image_folder / f"{name}.bmp", format="BMP")
            tifffile.imwrite(mask_folder / f"{name}.tif", labels, photometric="minisblack",
                             metadata=None)
    return root


def _marker(parameters):
    return {"generator": "fcn8_lasagne synthetic polyps", "version": GENERATOR_VERSION,
            "parameters": parameters}


def _read_marker(root):
    try:
        return json.loads((root / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_cache_dir():
    """Where generated data goes: ``$FCN8_LASAGNE_CACHE``, else ``$XDG_CACHE_HOME/fcn8_lasagne``,
    else ``~/.cache/fcn8_lasagne``."""
    if os.environ.get("FCN8_LASAGNE_CACHE"):
        return Path(os.environ["FCN8_LASAGNE_CACHE"])
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "fcn8_lasagne"


def ensure_synthetic_polyps(root=None, n_train=48, n_valid=12, n_test=12, image_size=(64, 80),
                            seed=0):
    """Generate the synthetic dataset once and return its root.

    The data is built in a temporary folder beside ``root`` and renamed into place, so a
    reader never sees a half-written dataset and two processes racing each other both end
    with the same complete copy. A ``synthetic.json`` file in the root records the
    parameters; a later call with the same parameters returns at once.

    Parameters
    ----------
    root : str, Path or None
        Where the data lives; ``None`` means
        ``default_cache_dir() / 'synthetic-<hash of the parameters>'``.
    n_train, n_valid, n_test, image_size, seed
        See :func:`make_synthetic_polyps`.

    Returns
    -------
    Path
    """
    parameters = _check_parameters(n_train, n_valid, n_test, image_size, seed)
    return ensure_generated(root, _marker(parameters), "synthetic",
                            lambda folder: make_synthetic_polyps(folder, **parameters))


def ensure_generated(root, marker, prefix, make):
    """Generate a data set once into ``root`` (the rule every built-in synthetic set shares).

    The data is built by ``make(folder)`` in a temporary folder beside ``root`` and renamed
    into place, so a reader never sees a half-written data set and two processes racing each
    other both end with the same complete copy. ``marker`` (a JSON-able dict with
    ``'parameters'`` and ``'version'``) is written to ``synthetic.json`` in the root; a later
    call with the same marker returns at once, another marker is refused.

    Parameters
    ----------
    root : str, Path or None
        ``None`` means ``default_cache_dir() / '<prefix>-<hash of the marker>'``.
    marker : dict
    prefix : str
    make : callable
        ``make(folder)`` writes the files into the existing empty ``folder``.

    Returns
    -------
    Path
    """
    if root is None:
        digest = hashlib.sha256(json.dumps(marker, sort_keys=True).encode()).hexdigest()[:12]
        root = default_cache_dir() / f"{prefix}-{digest}"
    root = Path(root)
    if root.exists():
        existing = _read_marker(root)
        if existing == marker:
            return root
        if existing is not None:
            raise ValueError(
                f"{root} holds synthetic data made with other parameters "
                f"({existing.get('parameters')}, version {existing.get('version')}); "
                f"asked for {marker.get('parameters')}, version {marker.get('version')}. Use "
                "another root or delete it"
            )
        if not root.is_dir() or any(root.iterdir()):
            raise FileExistsError(f"{root} exists and is not a synthetic dataset folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        building.chmod(0o755)  # mkdtemp makes it private; the dataset need not be
        make(building)
        (building / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True),
                                           encoding="utf-8")
        try:
            os.rename(building, root)  # replaces an empty folder on POSIX
        except OSError:
            if _read_marker(root) != marker:
                raise
    finally:
        if building.exists():
            shutil.rmtree(building)
    return root


class SyntheticPolyps(Polyps912):
    """One split of the synthetic polyp dataset, generated on first use.

    Parameters
    ----------
    root : str, Path or None
        See :func:`ensure_synthetic_polyps`.
    split : str
        'train', 'valid' (or 'val') or 'test'.
    train_from_0_255 : bool
        See :class:`~fcn8_lasagne.data.SegmentationDataset`.
    n_train, n_valid, n_test, image_size, seed
        See :func:`make_synthetic_polyps`.
    """

    name = "synthetic"

    def __init__(self, root=None, split="train", train_from_0_255=False, n_train=48, n_valid=12,
                 n_test=12, image_size=(64, 80), seed=0):
        root = ensure_synthetic_polyps(root, n_train=n_train, n_valid=n_valid, n_test=n_test,
                                       image_size=image_size, seed=seed)
        super().__init__(root, split, masks="masks2", train_from_0_255=train_from_0_255)
