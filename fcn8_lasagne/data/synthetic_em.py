"""A synthetic stand-in for the ISBI 2012 EM stacks, generated on demand.

Each slice is a tiling of irregular cells (a Voronoi diagram of random seeds, its
coordinates bent by smooth noise) whose boundaries are dark membranes 2 to 4 pixels wide;
cell interiors are grey with texture and hold darker round organelles (labelled cell), so
darkness alone does not make a membrane. Slices are blurred and noisy, as an electron
micrograph. The files are written in the ISBI layout and read by
:class:`~fcn8_lasagne.data.IsbiEmStacks`::

    <root>/train-volume.tif   <root>/train-labels.tif (0 membrane, 255 cell)
    <root>/test-volume.tif

Page ``i`` of stack ``s`` depends only on ``(seed, s, i)``; the same parameters give
byte-identical files. The cache and the build-then-rename rule are
:func:`~fcn8_lasagne.data.synthetic.ensure_generated`'s.
"""

import numpy as np
import tifffile
from scipy.ndimage import binary_dilation, gaussian_filter

from .isbi_em import IsbiEmStacks
from .synthetic import ensure_generated

__all__ = ["render_em_slice", "make_synthetic_em", "ensure_synthetic_em", "SyntheticEmStacks",
           "SYNTHETIC_EM_DEFAULTS"]

GENERATOR_VERSION = 1
SYNTHETIC_EM_DEFAULTS = {"n_pages": 30, "page_size": (256, 256), "seed": 0}
_STACKS = ("train", "test")


def _smooth_field(rng, shape, sigma):
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-12)


def render_em_slice(rng, page_size, cell_size=24.0):
    """Draw one EM-like slice and its labels.

    Parameters
    ----------
    rng : numpy.random.Generator
    page_size : (int, int)
        (height, width), each at least 16.
    cell_size : float
        Typical cell diameter in pixels.

    Returns
    -------
    image : numpy.ndarray
        uint8 (H, W).
    labels : numpy.ndarray
        uint8 (H, W): 0 membrane, 255 cell.
    """
    height, width = (int(size) for size in page_size)
    if min(height, width) < 16:
        raise ValueError(f"page_size must be at least 16x16, got {height}x{width}")
    n_cells = max(2, int(round(height * width / cell_size ** 2 * rng.uniform(0.8, 1.2))))
    seeds = rng.uniform((0, 0), (height, width), size=(n_cells, 2))
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    bend = cell_size * 0.25
    rows = rows + bend * _smooth_field(rng, (height, width), cell_size / 2)
    columns = columns + bend * _smooth_field(rng, (height, width), cell_size / 2)
    distances = ((rows[..., None] - seeds[:, 0]) ** 2 + (columns[..., None] - seeds[:, 1]) ** 2)
    cells = distances.argmin(axis=-1)
    boundary = np.zeros((height, width), dtype=bool)
    boundary[:-1] |= cells[:-1] != cells[1:]
    boundary[:, :-1] |= cells[:, :-1] != cells[:, 1:]
    membrane = binary_dilation(boundary, iterations=int(rng.integers(1, 3)))

    # cell interiors: one grey level per cell, texture; organelles: darker discs
    image = rng.uniform(150, 200, n_cells)[cells]
    image += 10 * _smooth_field(rng, (height, width), 1.5)
    for _ in range(int(rng.poisson(n_cells * 0.6))):
        centre = rng.uniform((0, 0), (height, width))
        radius = rng.uniform(1.5, cell_size * 0.18)
        disc = (np.hypot(rows - centre[0], columns - centre[1]) < radius) & ~membrane
        image[disc] = rng.uniform(70, 120)
    image[membrane] = rng.uniform(30, 70) + 10 * _smooth_field(rng, (height, width), 1.0)[membrane]
    # a smooth drift in brightness, the microscope's blur and shot noise
    image *= 1 + 0.1 * _smooth_field(rng, (height, width), max(height, width) / 4)
    image = gaussian_filter(image, rng.uniform(0.7, 1.2))
    image += rng.normal(0, 8, (height, width))
    labels = np.where(membrane, 0, 255).astype(np.uint8)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), labels


def _check_parameters(n_pages, page_size, seed):
    if int(n_pages) != n_pages or n_pages < 2:
        raise ValueError(f"n_pages must be an integer >= 2, got {n_pages!r}")
    page_size = tuple(int(size) for size in page_size)
    if len(page_size) != 2 or min(page_size) < 16:
        raise ValueError(f"page_size must be (height, width), each >= 16; got {page_size}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {"n_pages": int(n_pages), "page_size": list(page_size), "seed": int(seed)}


def make_synthetic_em(root, n_pages=30, page_size=(256, 256), seed=0):
    """Write ``train-volume.tif``, ``train-labels.tif`` and ``test-volume.tif`` into ``root``.

    Parameters
    ----------
    root : str or Path
        An existing folder.
    n_pages : int, default 30
    page_size : (int, int), default (256, 256)
    seed : int, default 0

    Returns
    -------
    root
    """
    parameters = _check_parameters(n_pages, page_size, seed)
    for stack_number, stack in enumerate(_STACKS):
        pages = [render_em_slice(np.random.default_rng([parameters["seed"], stack_number, i]),
                                 parameters["page_size"])
                 for i in range(parameters["n_pages"])]
        images = np.stack([image for image, _ in pages])
        tifffile.imwrite(f"{root}/{stack}-volume.tif", images, photometric="minisblack",
                         metadata=None)
        if stack == "train":
            tifffile.imwrite(f"{root}/train-labels.tif", np.stack([label for _, label in pages]),
                             photometric="minisblack", metadata=None)
    return root


def ensure_synthetic_em(root=None, n_pages=30, page_size=(256, 256), seed=0):
    """Generate the synthetic EM stacks once (default: under the package cache) and return
    their folder; see :func:`~fcn8_lasagne.data.synthetic.ensure_generated`."""
    parameters = _check_parameters(n_pages, page_size, seed)
    marker = {"generator": "fcn8_lasagne synthetic EM stacks", "version": GENERATOR_VERSION,
              "parameters": parameters}
    return ensure_generated(root, marker, "synthetic-em",
                            lambda folder: make_synthetic_em(folder, **parameters))


class SyntheticEmStacks(IsbiEmStacks):
    """One split of the synthetic EM stacks, generated on first use.

    Parameters
    ----------
    root : str, Path or None
        See :func:`ensure_synthetic_em`.
    split : str
        'train', 'valid' (or 'val') or 'test'.
    train_from_0_255 : bool
    train_fraction : float, default 0.85
    n_pages, page_size, seed
        See :func:`make_synthetic_em`.
    """

    name = "synthetic_em"

    def __init__(self, root=None, split="train", train_from_0_255=False, train_fraction=0.85,
                 n_pages=30, page_size=(256, 256), seed=0):
        root = ensure_synthetic_em(root, n_pages=n_pages, page_size=page_size, seed=seed)
        super().__init__(root, split, train_fraction=train_fraction,
                         train_from_0_255=train_from_0_255, n_pages=n_pages,
                         page_size=page_size)
