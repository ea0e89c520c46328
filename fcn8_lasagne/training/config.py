"""The settings of a training run and the checks that need no data.

:class:`TrainingConfig` holds the settings every model shares (the tutorials' flags, the save
folder, the device, the time budget) plus ``model``, which names the recipe, and ``options``,
the recipe's own settings. :func:`check_config` refuses a bad value of a shared setting before
any work, naming the flag, the value and what is accepted.
"""

import math
import numbers
import os
from dataclasses import dataclass, field

__all__ = ["TrainingConfig", "check_config", "check_devices", "check_last_batches",
           "check_early_stop_class", "is_int"]


@dataclass
class TrainingConfig:
    """Settings of a training run (the tutorial's flags plus ours).

    Attributes
    ----------
    dataset : str
        A dataset name the recipe accepts (FCN-8: 'polyps912', 'camvid', 'folder',
        'synthetic').
    data_dir : str or None
        The dataset root (not needed for the synthetic sets).
    learning_rate, penal_cst : float
        The optimiser's step size and the L2 weight decay on the regularizable parameters.
    num_epochs, max_patience : int
    batch_size : tuple of 3 int
        Train, validation and test batch sizes.
    data_augmentation : dict
        The tutorial's augmentation dict (``crop_size``, ``horizontal_flip``, …).
    flip_every_image : bool
        ``horizontal_flip: True`` flips every image as the original loader did.
    early_stop_class : int or None
        Early-stop on this class's Jaccard instead of the mean.
    train_from_0_255 : bool
        Feed pixel values in 0..255 instead of [0, 1].
    savepath : str
    resume : bool
        Continue from the last epoch saved in ``savepath``.
    overwrite : bool
        Start a new run in a ``savepath`` that already holds one, deleting its files (without
        it, such a ``savepath`` is an error).
    seed : int or None
        Seeds initialisation, dropout, shuffling and augmentation.
    model : str
        A key of :data:`fcn8_lasagne.training.RECIPES` ('fcn8', 'fcn16', 'fcn32', …).
    device : str
        'cpu', 'jax' or 'gpu' (see :mod:`fcn8_lasagne.compile`).
    init_weights : str or None
        A Lasagne ``.npz`` to start from.
    deconv_init : str
        FCN models: 'glorot' (tutorial) or 'bilinear'.
    dataset_options : dict
        Extra keyword arguments of the dataset reader.
    allow_nonfinite : bool
        Accept NaN or infinite values in ``init_weights`` (by default an error).
    devices : int, 'all' or None
        Train data-parallel on this many devices of ``device`` ('jax' or 'gpu'; ``None``,
        the default, is one device). Every batch size (train, valid, test), and the last,
        smaller batch of each split, must be a multiple of the count: validation and the
        test run on the same devices. The count is not part of the saved state
        (``training_state.npz``): a run can resume with another count. In a multi-process
        run (:func:`fcn8_lasagne.compile.initialize_distributed` called first) each process
        feeds its own consecutive share of every batch and only process 0 writes files and
        prints.
    time_budget : float or None
        Seconds, counted from the start of :meth:`Trainer.train`: no epoch starts that the
        last epoch's duration says would end after it (the final test still runs). ``None``
        (the default) sets no limit.
    options : dict
        The recipe's own settings (its command-line flags), read by the recipe only.
    """

    dataset: str = "synthetic"
    data_dir: str = None
    learning_rate: float = 1e-4
    penal_cst: float = 0.0
    num_epochs: int = 750
    max_patience: int = 100
    batch_size: tuple = (10, 1, 1)
    data_augmentation: dict = field(default_factory=dict)
    flip_every_image: bool = False
    early_stop_class: int = None
    train_from_0_255: bool = False
    savepath: str = "save_models/polyps/fcn8_data_aug"
    resume: bool = False
    overwrite: bool = False
    seed: int = None
    model: str = "fcn8"
    device: str = "cpu"
    init_weights: str = None
    deconv_init: str = "glorot"
    dataset_options: dict = field(default_factory=dict)
    allow_nonfinite: bool = False
    devices: object = None
    time_budget: float = None
    options: dict = field(default_factory=dict)


def is_int(value):
    """Whether ``value`` is an integer (and not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_config(config):
    """Reject bad shared settings (epochs, patience, learning rate, weight decay, seed,
    savepath, batch sizes, devices, time budget) before any work.

    Raises
    ------
    ValueError
        Naming the flag, the value and what is accepted.
    """
    for flag, value in (("-num_epochs (-ne)", config.num_epochs),
                        ("-max_patience", config.max_patience)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value!r}")
    for flag, value, low in (("-learning_rate", config.learning_rate, "> 0"),
                             ("-penal_cst", config.penal_cst, ">= 0")):
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not math.isfinite(value) or value < 0 or (low == "> 0" and value == 0)):
            raise ValueError(f"{flag} must be a finite number {low}, got {value!r}")
    if config.seed is not None and (not is_int(config.seed)
                                    or not 0 <= config.seed < 2 ** 32):
        raise ValueError(f"--seed must be an integer in 0..{2 ** 32 - 1}, got {config.seed!r}")
    if os.path.exists(config.savepath) and not os.path.isdir(config.savepath):
        raise ValueError(f"--savepath {config.savepath} is a file, expected a folder (or a "
                         "path that does not exist yet)")
    sizes = tuple(config.batch_size) if isinstance(config.batch_size, (tuple, list)) else None
    if sizes is None or len(sizes) != 3:
        raise ValueError("-batch_size must be three positive integers (train, valid, test), "
                         f"got {config.batch_size!r}")
    for split, size in zip(("train", "valid", "test"), sizes):
        if not is_int(size) or size < 1:
            raise ValueError(f"-batch_size: the {split} batch size must be a positive integer, "
                             f"got {size!r} (in {list(sizes)}: train, valid, test)")
    budget = config.time_budget
    if budget is not None and (not isinstance(budget, numbers.Real) or isinstance(budget, bool)
                               or not math.isfinite(budget) or budget <= 0):
        raise ValueError(f"--time-budget must be a finite number of seconds > 0, got "
                         f"{budget!r}")
    if not isinstance(config.options, dict):
        raise ValueError(f"TrainingConfig.options must be a dict, got {config.options!r}")
    check_devices(config)


def check_devices(config, count=None):
    """Reject ``devices`` on the CPU backend and batch sizes not divisible by the count
    (``count``: the resolved number of devices, else ``config.devices`` if an int)."""
    devices = config.devices
    if devices is None:
        return
    if config.device == "cpu":
        raise ValueError(f"--devices {devices} needs --device jax or gpu (the C backend, "
                         "--device cpu, runs on one CPU)")
    if count is None:
        if isinstance(devices, str):
            if devices != "all":
                raise ValueError(f"--devices must be a positive integer or 'all', got "
                                 f"{devices!r}")
            return
        if not is_int(devices) or devices < 1:
            raise ValueError(f"--devices must be a positive integer or 'all', got "
                             f"{devices!r}")
        count = devices
    for split, size in zip(("train", "valid", "test"), config.batch_size):
        if size % count:
            raise ValueError(
                f"-batch_size: the {split} batch size {size} is not divisible by the {count} "
                f"devices (remainder {size % count}); each device needs an equal share: "
                f"choose a multiple of {count}")


def check_last_batches(config, splits, count):
    """Reject a split whose last, smaller batch does not divide over ``count`` devices."""
    for name, dataset, size in zip(("train", "valid", "test"), splits, config.batch_size):
        if dataset is None:
            continue
        rest = len(dataset) % size
        if rest % count:
            raise ValueError(
                f"-batch_size: the {name} split's {len(dataset)} images leave a last batch of "
                f"{rest} (batch size {size}), not divisible by the {count} devices "
                f"(remainder {rest % count}); choose a batch size that divides "
                f"{len(dataset)} or a multiple of {count} images")


def check_early_stop_class(config, n_classes):
    """Reject an ``early_stop_class`` that is not a class of the dataset."""
    value = config.early_stop_class
    if value is None:
        return
    if not is_int(value) or not 0 <= value < n_classes:
        raise ValueError(
            f"-early_stop_class {value!r} is not a class of dataset {config.dataset}: expected "
            f"an integer in 0..{n_classes - 1} ({n_classes} classes)")
