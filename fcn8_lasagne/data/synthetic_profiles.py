"""Synthetic cortical-layer profiles, generated on demand, in the tutorial's text layout.

Each 200-sample profile crosses the cortex: padding (class 0) before and after it, and in
between the six layers (classes 1..6) with random thicknesses around typical proportions.
The raw intensity is a per-layer level (a profile-wide gain and offset, overlapping
between layers) plus a smooth drift and noise; the smooth channel (``training_geo.txt``) is
the raw profile filtered by a Gaussian. A layer's level alone does not decide its class:
the order and the boundaries do. Written for :class:`~fcn8_lasagne.data.CorticalLayers`::

    <root>/6layers_segmentation/training_{raw,geo,cls,regions}.txt

Profile ``i`` depends only on ``(seed, i)``. The cache and the build-then-rename rule are
:func:`~fcn8_lasagne.data.synthetic.ensure_generated`'s.
"""

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .cortical_layers import CORTICAL_FILES, PROFILE_LENGTH, CorticalLayers
from .synthetic import ensure_generated

__all__ = ["render_profile", "make_synthetic_profiles", "ensure_synthetic_profiles",
           "SyntheticCorticalProfiles", "SYNTHETIC_PROFILES_DEFAULTS"]

GENERATOR_VERSION = 1
SYNTHETIC_PROFILES_DEFAULTS = {"n_profiles": 600, "seed": 0}
_LAYER_SHARES = np.array([0.10, 0.10, 0.25, 0.10, 0.25, 0.20])
_LAYER_LEVELS = np.array([0.55, 0.75, 0.60, 0.90, 0.50, 0.70])


def render_profile(rng, length=PROFILE_LENGTH):
    """Draw one profile.

    Returns
    -------
    raw, smooth : numpy.ndarray
        float64 (length,).
    labels : numpy.ndarray
        int32 (length,): 0 padding, 1..6 the layers, in order.
    region : int
        A region id 0..9 (what ``training_regions.txt`` holds).
    """
    start = int(rng.integers(length // 40, length // 5))
    thickness = int(rng.integers(length // 2, length - start - length // 40))
    shares = rng.dirichlet(_LAYER_SHARES * 100)
    edges = start + np.round(np.cumsum(np.concatenate([[0], shares])) * thickness).astype(int)
    labels = np.zeros(length, dtype=np.int32)
    for layer in range(6):
        labels[edges[layer]:edges[layer + 1]] = layer + 1
    levels = np.concatenate([[rng.uniform(0.05, 0.2)],
                             _LAYER_LEVELS + rng.normal(0, 0.06, 6)])
    gain, offset = rng.uniform(0.7, 1.3), rng.uniform(-0.1, 0.1)
    drift = gaussian_filter1d(rng.standard_normal(length), 25, mode="nearest") * 0.5
    raw = gain * levels[labels] + offset + 0.1 * drift + rng.normal(0, 0.08, length)
    smooth = gaussian_filter1d(raw, 3.0, mode="nearest")
    return raw, smooth, labels, int(rng.integers(0, 10))


def _check_parameters(n_profiles, seed):
    if int(n_profiles) != n_profiles or n_profiles < 2:
        raise ValueError(f"n_profiles must be an integer >= 2, got {n_profiles!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {"n_profiles": int(n_profiles), "seed": int(seed)}


def make_synthetic_profiles(root, n_profiles=600, seed=0):
    """Write the four text files into ``root/6layers_segmentation/`` (created).

    Returns
    -------
    Path
        ``root``.
    """
    parameters = _check_parameters(n_profiles, seed)
    folder = Path(root) / "6layers_segmentation"
    folder.mkdir(parents=True)
    columns = {"raw": [], "smooth": [], "labels": [], "regions": []}
    for index in range(parameters["n_profiles"]):
        raw, smooth, labels, region = render_profile(
            np.random.default_rng([parameters["seed"], index]))
        columns["raw"].append(" ".join(f"{value:.6f}" for value in raw))
        columns["smooth"].append(" ".join(f"{value:.6f}" for value in smooth))
        columns["labels"].append(" ".join(str(value) for value in labels))
        columns["regions"].append(" ".join([str(region)] * PROFILE_LENGTH))
    for kind, lines in columns.items():
        (folder / CORTICAL_FILES[kind]).write_text("\n".join(lines) + "\n", encoding="ascii")
    return Path(root)


def ensure_synthetic_profiles(root=None, n_profiles=600, seed=0):
    """Generate the synthetic profiles once (default: under the package cache) and return
    their root; see :func:`~fcn8_lasagne.data.synthetic.ensure_generated`."""
    parameters = _check_parameters(n_profiles, seed)
    marker = {"generator": "fcn8_lasagne synthetic cortical profiles",
              "version": GENERATOR_VERSION, "parameters": parameters}
    return ensure_generated(root, marker, "synthetic-profiles",
                            lambda folder: make_synthetic_profiles(folder, **parameters))


class SyntheticCorticalProfiles(CorticalLayers):
    """One split of the synthetic cortical profiles, generated on first use.

    Parameters
    ----------
    root : str, Path or None
        See :func:`ensure_synthetic_profiles`.
    split : str
    smooth_or_raw : {'both', 'raw', 'smooth'}, default 'both'
    train_fraction : float, default 0.85
    n_profiles, seed
        See :func:`make_synthetic_profiles`.
    """

    name = "synthetic_profiles"

    def __init__(self, root=None, split="train", smooth_or_raw="both", train_fraction=0.85,
                 n_profiles=600, seed=0):
        root = ensure_synthetic_profiles(root, n_profiles=n_profiles, seed=seed)
        super().__init__(root, split, smooth_or_raw=smooth_or_raw,
                         train_fraction=train_fraction)
