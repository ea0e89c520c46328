"""The tutorial's ``train_fcn8.py``: Adam on a void-masked cross-entropy, Jaccard early stopping.

:func:`build_functions` compiles the tutorial's two functions (``train_fn`` with the Adam
updates and ``val_fn`` returning loss, accuracy and the Jaccard totals) and :func:`train` runs
its loop: one line per epoch (printed and appended to ``fcn8_output.log``), the best and last
weights in Lasagne's ``.npz`` format, the error histories, ``config.txt``, and at the end the
test scores of the best weights. On top of the original: a progress bar, ``--resume`` from the
last epoch with the optimiser state (refused if ``training_state.npz`` does not match the
weight files it records), a refusal to start over an existing run unless ``overwrite``, all
three splits read and checked before compiling, a clean stop on Ctrl-C (never in the middle of
an epoch's saves), a stop on a non-finite loss, a warning and a test of the last weights when
validation Jaccard is NaN, and atomic saves, ``training_state.npz`` written last. Deliberate differences are listed in ``docs/faithfulness.md``.

Also not in the original: data-parallel training (``TrainingConfig.devices``: the batches
split over several JAX devices, and over several processes after
:func:`fcn8_lasagne.compile.initialize_distributed`, where only process 0 prints and writes).
"""

import hashlib
import json
import numbers
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import pytensor.tensor as pt

from . import compile as compiling
from .data import Augmentation, BatchIterator, load_dataset
from .files import atomic_write, remove_stale_temporaries
from .layers import get_all_param_values, get_all_params, get_output, set_all_param_values
from .metrics import accuracy_metric, crossentropy_metric, jaccard_from_totals, jaccard_metric
from .models import BUILDERS
from .models.summary import check_input_size
from .regularization import l2, regularize_network_params
from .updates import adam, get_update_state_values, set_update_state_values
from .weights import atomic_savez, read_npz_values

__all__ = [
    "TrainingConfig",
    "TrainingDiverged",
    "RunMismatch",
    "check_settings",
    "existing_run_files",
    "TrainingFunctions",
    "build_functions",
    "run_validation",
    "train",
    "epoch_line",
    "final_line",
]

BEST_WEIGHTS = "new_fcn8_model_best.npz"
LAST_WEIGHTS = "new_fcn8_model_last.npz"
BEST_ERRORS = "fcn8_errors_best.npz"
LAST_ERRORS = "fcn8_errors_last.npz"
STATE_FILE = "training_state.npz"
LOG_FILE = "fcn8_output.log"
RESULTS_FILE = "final_results.json"
#: The files that make up a training run in ``savepath`` (a new run refuses to start over
#: them unless ``overwrite``).
RUN_FILES = (BEST_WEIGHTS, LAST_WEIGHTS, STATE_FILE, BEST_ERRORS, LAST_ERRORS, LOG_FILE,
             RESULTS_FILE)

#: The tutorial's command-line defaults (train_fcn8.py), used for real datasets (unseeded,
#: as the tutorial).
TUTORIAL_DEFAULTS = dict(learning_rate=1e-4, penal_cst=0.0, num_epochs=750, max_patience=100,
                         batch_size=(10, 1, 1),
                         data_augmentation={"crop_size": (224, 224), "horizontal_flip": True,
                                            "fill_mode": "constant"},
                         seed=None)

#: Defaults for the built-in synthetic data, sized so that the whole run takes under ten
#: minutes on a 2-core CPU: the tutorial's optimiser, one image per step (more Adam steps for
#: the same compute) and no crop (the 64x80 frames are smaller than 224x224). Seeded, so
#: that the main job starts from the same weights every time: from a Glorot start the
#: ReLU-ed score layers output zeros, and some draws leave the network at the uniform
#: prediction (loss ln 2) for several epochs while others learn from the first one.
SYNTHETIC_DEFAULTS = dict(learning_rate=1e-4, penal_cst=0.0, num_epochs=7, max_patience=100,
                          batch_size=(1, 4, 4),
                          data_augmentation={"horizontal_flip": True},
                          seed=1)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainingConfig:
    """Settings of a training run (the tutorial's flags plus ours).

    Attributes
    ----------
    dataset : str
        'polyps912', 'camvid', 'folder' or 'synthetic'.
    data_dir : str or None
        The dataset root (not needed for 'synthetic').
    learning_rate, penal_cst : float
        Adam's step size and the L2 weight decay on the regularizable parameters.
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
        'fcn8', 'fcn16' or 'fcn32'.
    device : str
        'cpu', 'jax' or 'gpu' (see :mod:`fcn8_lasagne.compile`).
    init_weights : str or None
        A Lasagne ``.npz`` to start from.
    deconv_init : str
        'glorot' (tutorial) or 'bilinear'.
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


@dataclass
class TrainingFunctions:
    """The compiled functions and the variables behind them."""

    train_fn: object
    val_fn: object
    predict_fn: object
    params: list
    updates: dict


def build_functions(top_layer, input_var, target_var, n_classes, void_labels,
                    learning_rate=1e-4, weight_decay=0.0, device="cpu", devices=None):
    """Compile ``train_fn``, ``val_fn`` and ``predict_fn`` exactly as ``train_fcn8.py`` did.

    Parameters
    ----------
    top_layer : Layer
        ``net['probs']``: (B·H·W, n_classes) probabilities.
    input_var : TensorVariable
    target_var : TensorVariable
        int32 vector of labels flattened in C order.
    n_classes : int
    void_labels : list of int
    learning_rate : float or shared scalar
    weight_decay : float
        Adds ``weight_decay * sum of squares of the regularizable parameters``.
    device : str
    devices : int, 'all' or None
        Compile ``train_fn`` and ``val_fn`` data-parallel over this many devices of
        ``device`` (see :func:`fcn8_lasagne.compile.function`): the images and the
        flattened labels are split along the batch (at image boundaries), the parameters
        and Adam's state replicated. ``predict_fn`` stays on one device.

    Returns
    -------
    TrainingFunctions
        ``train_fn(X, y) -> loss`` (applies Adam), ``val_fn(X, y) -> [loss, accuracy,
        jaccard (2, n_classes)]`` and ``predict_fn(X) -> probabilities`` (deterministic).
    """
    prediction = get_output(top_layer)
    loss = crossentropy_metric(prediction, target_var, void_labels)
    if weight_decay > 0:
        loss = loss + weight_decay * regularize_network_params(top_layer, l2)
    params = get_all_params(top_layer, trainable=True)
    updates = adam(loss, params, learning_rate=learning_rate)
    parallel = {} if devices is None else dict(devices=devices,
                                               batch_inputs=[input_var, target_var])
    train_fn = compiling.function([input_var, target_var], loss, updates=updates,
                                  device=device, **parallel)
    test_prediction = get_output(top_layer, deterministic=True)
    test_loss = crossentropy_metric(test_prediction, target_var, void_labels)
    test_acc = accuracy_metric(test_prediction, target_var, void_labels)
    test_jacc = jaccard_metric(test_prediction, target_var, n_classes)
    val_fn = compiling.function([input_var, target_var], [test_loss, test_acc, test_jacc],
                                device=device, **parallel)
    predict_fn = compiling.function([input_var], test_prediction, device=device)
    return TrainingFunctions(train_fn, val_fn, predict_fn, params, updates)


def run_validation(val_fn, iterator, n_classes, progress=None, share=None):
    """Mean loss and accuracy over the batches, and the Jaccard totals (2, n_classes).

    ``share(X, Y) -> (X, y)`` gives what ``val_fn`` takes of a batch (default: the whole
    batch, labels flattened; in a multi-process run, this process's slice)."""
    cost_total = 0.0
    acc_total = 0.0
    jacc_total = np.zeros((2, n_classes))
    n_batches = 0
    for X, Y in iterator:
        cost, acc, jacc = val_fn(*(share(X, Y) if share else (X, Y.reshape(-1))))
        cost_total += float(cost)
        acc_total += float(acc)
        jacc_total += jacc
        n_batches += 1
        if progress is not None:
            progress.update(1)
    return cost_total / n_batches, acc_total / n_batches, jacc_total


def _jacc_classes(prefix, per_class):
    return ", ".join(f"{prefix} class {k} {value:f}" for k, value in enumerate(per_class))


def epoch_line(epoch, cost_train, cost_val, acc_val, jacc_per_class, jacc_val, seconds):
    """The tutorial's per-epoch line (one ``jacc val class k`` field per class)."""
    return (f"EPOCH {epoch}: Avg epoch training cost train {cost_train:f}, cost val "
            f"{cost_val:f}, acc val {acc_val:f}, {_jacc_classes('jacc val', jacc_per_class)}, "
            f"jacc val {jacc_val:f} took {seconds:f} s")


def final_line(err_test, acc_test, jacc_per_class, jacc_test):
    """The tutorial's final test line."""
    return (f"FINAL MODEL: err test {err_test:f}, acc test {acc_test:f}, "
            f"{_jacc_classes('jacc test', jacc_per_class)}, jacc test {jacc_test:f}")


def _augmentation(config, void_label):
    """The training augmentation of ``config.data_augmentation``, or None.

    Every option is checked (an unsupported ``fill_mode`` or key, a non-integer crop size, a
    crop smaller than the network's minimum input raise a ValueError), even when the dict
    holds nothing but ``fill_mode: 'constant'``, which means no augmentation.
    """
    options = dict(config.data_augmentation or {})
    augmentation = Augmentation.from_tutorial_dict(
        options, flip_every_image=config.flip_every_image, void_label=void_label)
    if augmentation.crop_size is not None:
        check_input_size(*augmentation.crop_size,
                         f"-data_augmentation crop_size {list(augmentation.crop_size)}")
    if not set(options) - {"fill_mode"}:  # 'constant' is the only mode (zero / void padding)
        return None
    return augmentation


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_settings(config):
    """Reject bad hyper-parameters, epoch, patience, batch size, seed, augmentation and
    save-folder settings before any work.

    :func:`train` calls it first; ``fcn8 train`` also calls it before printing anything.

    Raises
    ------
    ValueError
        Naming the flag, the value and what is accepted.
    """
    for flag, value in (("-num_epochs (-ne)", config.num_epochs),
                        ("-max_patience", config.max_patience)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value!r}")
    for flag, value, low in (("-learning_rate", config.learning_rate, "> 0"),
                             ("-penal_cst", config.penal_cst, ">= 0")):
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not np.isfinite(value) or value < 0 or (low == "> 0" and value == 0)):
            raise ValueError(f"{flag} must be a finite number {low}, got {value!r}")
    if config.seed is not None and (not _is_int(config.seed)
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
        if not _is_int(size) or size < 1:
            raise ValueError(f"-batch_size: the {split} batch size must be a positive integer, "
                             f"got {size!r} (in {list(sizes)}: train, valid, test)")
    _augmentation(config, void_label=None)
    _check_devices(config)


def _check_devices(config, count=None):
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
        if not _is_int(devices) or devices < 1:
            raise ValueError(f"--devices must be a positive integer or 'all', got "
                             f"{devices!r}")
        count = devices
    for split, size in zip(("train", "valid", "test"), config.batch_size):
        if size % count:
            raise ValueError(
                f"-batch_size: the {split} batch size {size} is not divisible by the {count} "
                f"devices (remainder {size % count}); each device needs an equal share: "
                f"choose a multiple of {count}")


def _check_last_batches(config, splits, count):
    """Reject a split whose last, smaller batch does not divide over ``count`` devices."""
    for name, dataset, size in zip(("train", "valid", "test"), splits, config.batch_size):
        rest = len(dataset) % size
        if rest % count:
            raise ValueError(
                f"-batch_size: the {name} split's {len(dataset)} images leave a last batch of "
                f"{rest} (batch size {size}), not divisible by the {count} devices "
                f"(remainder {rest % count}); choose a batch size that divides "
                f"{len(dataset)} or a multiple of {count} images")


def _image_size_check(dataset, split):
    """A ``validate`` check naming the split and file of an image too small for the network."""
    def check(index, image, _):
        check_input_size(image.shape[0], image.shape[1],
                         f"{split} image {dataset.image_paths[index]}")
    return check


def _check_early_stop_class(config, n_classes):
    """Reject an ``early_stop_class`` that is not a class of the dataset."""
    value = config.early_stop_class
    if value is None:
        return
    if not _is_int(value) or not 0 <= value < n_classes:
        raise ValueError(
            f"-early_stop_class {value!r} is not a class of dataset {config.dataset}: expected "
            f"an integer in 0..{n_classes - 1} ({n_classes} classes)")


def _load_splits(config):
    options = dict(config.dataset_options)
    options["train_from_0_255"] = config.train_from_0_255
    return [load_dataset(config.dataset, config.data_dir, split, **options)
            for split in ("train", "valid", "test")]


class RunMismatch(RuntimeError):
    """``training_state.npz`` does not describe the weight / error files next to it."""


def _fingerprint(arrays):
    """A cheap fingerprint of a list of arrays: shapes, dtypes and a strided sample."""
    digest = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str};".encode())
        flat = array.reshape(-1)
        digest.update(np.ascontiguousarray(flat[::max(1, flat.size // 4096)]).tobytes())
    return digest.hexdigest()


@contextmanager
def _sigint_deferred():
    """Hold back Ctrl-C while a group of files is written, then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT,
                      signal.default_int_handler if previous is None else previous)
    if received:
        raise KeyboardInterrupt


class _Run:
    """The state of one training run: histories, patience, files.

    The in-memory histories, best score and patience are only changed after the files they
    describe are written (in :func:`train`), and ``training_state.npz`` is written last with a
    fingerprint of each weights / errors file it relies on, so that :meth:`restore` can
    refuse a state that does not match them.
    """

    def __init__(self, savepath, writer=True):
        self.savepath = savepath
        # a process other than 0 of a multi-process run writes nothing: it keeps the
        # weights it would have saved in memory (to test the best ones at the end)
        self.writer = writer
        self.memory = {}
        self.err_train, self.err_valid, self.acc_valid, self.jacc_valid = [], [], [], []
        self.patience = 0
        self.best_jacc_val = -np.inf
        self.next_epoch = 0
        self.fingerprints = {}

    def path(self, name):
        return os.path.join(self.savepath, name)

    def histories(self):
        return [self.err_valid, self.err_train, self.acc_valid, self.jacc_valid]

    def write(self, name, arrays):
        """Write ``arrays`` as ``arr_i`` atomically; return the file's fingerprint."""
        if self.writer:
            atomic_savez(self.path(name), *arrays)
        elif name in (BEST_WEIGHTS, LAST_WEIGHTS):
            self.memory[name] = list(arrays)
        return _fingerprint(arrays)

    def has(self, name):
        """Whether the run holds ``name`` (on disk, or in memory for a non-writer)."""
        return os.path.exists(self.path(name)) if self.writer else name in self.memory

    def read_weights(self, name):
        return read_npz_values(self.path(name)) if self.writer else self.memory[name]

    def save_state(self, functions):
        if not self.writer:
            return
        state = get_update_state_values(functions.updates, functions.params)
        atomic_savez(self.path(STATE_FILE), *state,
                     progress=np.array([self.next_epoch, self.patience]),
                     best_jacc_val=np.array(self.best_jacc_val),
                     histories=np.array([self.err_train, self.err_valid, self.acc_valid,
                                         self.jacc_valid], dtype=np.float64),
                     fingerprints=np.array(json.dumps(self.fingerprints, sort_keys=True)))

    def restore(self, functions, top_layer, log=print):
        with np.load(self.path(STATE_FILE), allow_pickle=False) as archive:
            n_state = sum(1 for name in archive.files if name.startswith("arr_"))
            state = [archive[f"arr_{i}"] for i in range(n_state)]
            progress = [int(v) for v in archive["progress"]]
            best_jacc_val = float(archive["best_jacc_val"])
            histories = archive["histories"]
            fingerprints = (json.loads(str(archive["fingerprints"]))
                            if "fingerprints" in archive.files else None)
        last_values = read_npz_values(self.path(LAST_WEIGHTS))
        if fingerprints is None:
            log(f"warning: {self.path(STATE_FILE)} was written by an older version and "
                "records no fingerprints; its weight files cannot be checked")
        else:
            mismatched = []
            for name, expected in sorted(fingerprints.items()):
                path = self.path(name)
                if not os.path.exists(path):
                    mismatched.append(f"{name} (missing)")
                    continue
                # error histories hold NaN for classes absent from a split
                values = (last_values if name == LAST_WEIGHTS
                          else read_npz_values(path, allow_nonfinite=name not in
                                               (BEST_WEIGHTS, LAST_WEIGHTS)))
                if _fingerprint(values) != expected:
                    mismatched.append(name)
            if mismatched:
                raise RunMismatch(
                    f"--resume: {self.path(STATE_FILE)} does not match "
                    f"{', '.join(mismatched)} in {self.savepath} (the run was probably stopped "
                    "while saving an epoch); refusing to resume from an inconsistent run. "
                    "Start again with --overwrite or another --savepath")
        self.next_epoch, self.patience = progress
        self.best_jacc_val = best_jacc_val
        self.err_train, self.err_valid, self.acc_valid, self.jacc_valid = (
            list(row) for row in histories) if histories.size else ([], [], [], [])
        self.fingerprints = fingerprints or {}
        if not self.writer:  # keeps in step with process 0, which reads them at the end
            self.memory[LAST_WEIGHTS] = last_values
            if os.path.exists(self.path(BEST_WEIGHTS)):
                self.memory[BEST_WEIGHTS] = read_npz_values(self.path(BEST_WEIGHTS))
        set_all_param_values(top_layer, last_values)
        set_update_state_values(functions.updates, functions.params, state)


def existing_run_files(savepath):
    """The files of a training run already in ``savepath`` (empty if none)."""
    return [name for name in RUN_FILES if os.path.exists(os.path.join(savepath, name))]


def _write_config(config, path, extra):
    lines = [f"{key}: {value}" for key, value in asdict(config).items()]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    atomic_write(path, lambda stream: stream.write(("\n".join(lines) + "\n").encode()))


def train(config, log=print, progress=True):
    """Run ``train_fcn8.py``'s training loop.

    Parameters
    ----------
    config : TrainingConfig
    log : callable
        Receives each printed line.
    progress : bool
        Show a tqdm bar per epoch on stderr.

    Returns
    -------
    dict
        ``epochs_run``, ``best_jacc_val``, ``test`` (loss, accuracy, per-class and mean
        Jaccard of the best weights, or None if interrupted) and ``interrupted``.

    Raises
    ------
    TrainingDiverged
        On a NaN or infinite training loss; the files stay as the last epoch saved them.
    FileExistsError
        If ``savepath`` already holds a run and neither ``resume`` nor ``overwrite`` is set.
    RunMismatch
        On ``resume``, if ``training_state.npz`` does not match the weight or error files.
    ValueError
        If a split holds a bad image or label value, or a setting is out of range
        (epochs, patience, batch sizes, augmentation, ``early_stop_class``): all checked
        before compiling.
    """
    from tqdm import tqdm

    check_settings(config)
    writer = compiling.is_writer()
    if not writer:  # another process of a multi-process run prints and writes
        log = _silent
        progress = False
    run = _Run(config.savepath, writer)
    if config.resume and config.overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume continues "
                         f"the run in {config.savepath}, --overwrite replaces it")
    if config.resume and not os.path.exists(run.path(STATE_FILE)):
        raise FileNotFoundError(
            f"--resume: no {STATE_FILE} in {config.savepath}; nothing to resume")
    if config.resume and not os.path.exists(run.path(LAST_WEIGHTS)):
        raise FileNotFoundError(
            f"--resume: {config.savepath} has {STATE_FILE} but no {LAST_WEIGHTS}; "
            "nothing to resume from")
    existing = existing_run_files(config.savepath)
    if existing and not config.resume and not config.overwrite:
        raise FileExistsError(
            f"{config.savepath} already holds a training run ({', '.join(existing)}); use "
            "--resume to continue it, --overwrite to replace it, or another --savepath")
    stale = (remove_stale_temporaries(config.savepath)
             if writer and os.path.isdir(config.savepath) else [])
    if stale:  # left by a process killed while saving (atomic_write's temporaries)
        log(f"removed {len(stale)} stale temporary file(s) of an interrupted save in "
            f"{config.savepath} ({sum(size for _, size in stale) / 1e6:.1f} MB): "
            + ", ".join(os.path.basename(path) for path, _ in stale))
    init_values = None
    if config.init_weights:  # read (and checked) before the data and the network
        init_values = read_npz_values(config.init_weights,
                                      allow_nonfinite=config.allow_nonfinite)
    # resolved before seeding: starting JAX's backend draws from NumPy's global generator
    count = (None if config.devices is None
             else len(compiling._resolve_devices(config.devices, config.device)))
    if config.seed is not None:
        np.random.seed(config.seed)
    train_set, valid_set, test_set = _load_splits(config)
    augmentation = _augmentation(config, train_set.void_label)
    cropped = augmentation is not None and augmentation.crop_size is not None
    for split, dataset in (("train", train_set), ("valid", valid_set), ("test", test_set)):
        # a bad file, label value or image size fails now, not after epochs; training
        # images are cropped (and padded) to crop_size when there is one
        dataset.validate(None if split == "train" and cropped
                         else _image_size_check(dataset, split))
    n_classes = train_set.n_classes
    _check_early_stop_class(config, n_classes)
    share = _batch_share(config, (train_set, valid_set, test_set), count)
    if writer:
        os.makedirs(config.savepath, exist_ok=True)
    void_labels = [train_set.void_label]
    nb_in_channels = 3
    train_iter = BatchIterator(train_set, config.batch_size[0], shuffle=True,
                               seed=config.seed, augmentation=augmentation)
    val_iter = BatchIterator(valid_set, config.batch_size[1])
    test_iter = BatchIterator(test_set, config.batch_size[2])
    log(f"Batch. train: {len(train_iter)}, val {len(val_iter)}, test {len(test_iter)}")
    log(f"Nb of classes: {n_classes}")
    log(f"Nb. of input channels: {nb_in_channels}")

    input_var = pt.tensor4("input_var")
    target_var = pt.ivector("target_var")
    builder = BUILDERS[config.model]
    net = builder(nb_in_channels, input_var, n_classes=n_classes, trainable=True,
                  void_labels=void_labels, deconv_init=config.deconv_init)
    top = net["probs"]
    if init_values is not None:
        try:
            set_all_param_values(top, init_values)
        except ValueError as error:
            raise ValueError(f"--init-weights {config.init_weights}: {error} (is this a "
                             f"{config.model} weight file?)") from None
    log("Defining and compiling training functions")
    functions = build_functions(top, input_var, target_var, n_classes, void_labels,
                                config.learning_rate, config.penal_cst, config.device,
                                config.devices)
    if config.resume:
        run.restore(functions, top, log)
        train_iter.epoch = run.next_epoch
        log(f"Resuming at epoch {run.next_epoch} (patience {run.patience})")
    elif existing and writer:  # --overwrite: the old run goes only now that the new one is ready
        for name in existing:
            os.unlink(run.path(name))
        log(f"--overwrite: removed the previous run's {', '.join(existing)}")
    if writer:
        _write_config(config, run.path("config.txt"),
                      {"n_classes": n_classes, "void_labels": void_labels})

    log("Start training")
    interrupted = False
    epoch = run.next_epoch
    try:
        while epoch < config.num_epochs and run.patience < config.max_patience:
            start_time = time.time()
            bar = tqdm(total=len(train_iter) + len(val_iter), desc=f"epoch {epoch}",
                       disable=not progress, leave=False)
            cost_train_total = 0.0
            for X, Y in train_iter:
                cost = float(functions.train_fn(*share(X, Y)))
                if not np.isfinite(cost):
                    bar.close()
                    raise TrainingDiverged(_diverged_message(run, epoch, cost, Y,
                                                             void_labels))
                cost_train_total += cost
                bar.update(1)
                bar.set_postfix(cost=f"{cost:.4f}")
            cost_train = cost_train_total / len(train_iter)
            cost_val, acc_val, jacc_totals = run_validation(functions.val_fn, val_iter,
                                                            n_classes, bar, share)
            bar.close()
            per_class, mean_jacc = jaccard_from_totals(jacc_totals)
            jacc_val = mean_jacc if config.early_stop_class is None \
                else per_class[config.early_stop_class]
            line = epoch_line(epoch, cost_train, cost_val, acc_val, per_class, jacc_val,
                              time.time() - start_time)
            log(line)
            if not np.isfinite(jacc_val):
                log(f"warning: epoch {epoch}: "
                    f"{_nan_jaccard_reason(jacc_totals, per_class, config.early_stop_class)}; "
                    "this epoch cannot count as the best (patience grows)"
                    + ("" if run.has(BEST_WEIGHTS) else
                       "; if no epoch has a finite validation Jaccard, the last weights are "
                       "tested"))
            improved = bool(jacc_val > run.best_jacc_val)  # False for NaN
            # write every file of the epoch, then commit, then the state: Ctrl-C waits
            with _sigint_deferred():
                histories = [h + [v] for h, v in zip(run.histories(),
                                                     (cost_val, cost_train, acc_val, jacc_val))]
                fingerprints = dict(run.fingerprints)
                values = get_all_param_values(top)
                if improved:
                    fingerprints[BEST_WEIGHTS] = run.write(BEST_WEIGHTS, values)
                    fingerprints[BEST_ERRORS] = run.write(BEST_ERRORS, histories)
                fingerprints[LAST_WEIGHTS] = run.write(LAST_WEIGHTS, values)
                del values
                fingerprints[LAST_ERRORS] = run.write(LAST_ERRORS, histories)
                run.err_valid, run.err_train, run.acc_valid, run.jacc_valid = histories
                if improved:
                    run.best_jacc_val = jacc_val
                    run.patience = 0
                else:
                    run.patience += 1
                run.fingerprints = fingerprints
                epoch += 1
                run.next_epoch = epoch
                run.save_state(functions)
                if writer:
                    with open(run.path(LOG_FILE), "a") as stream:
                        stream.write(line + "\n")
    except KeyboardInterrupt:
        interrupted = True
        # Ctrl-C came during training or validation of `epoch` (never while saving): the
        # current weights and optimiser state go to `last`, with the histories and best
        # of the epochs completed before; --resume reruns this epoch
        with _sigint_deferred():
            run.fingerprints[LAST_WEIGHTS] = run.write(LAST_WEIGHTS, get_all_param_values(top))
            run.save_state(functions)
        log(f"Interrupted in epoch {epoch}: weights saved in {run.path(LAST_WEIGHTS)}; "
            "continue with --resume")
    result = {"epochs_run": epoch, "best_jacc_val": run.best_jacc_val, "test": None,
              "interrupted": interrupted}
    if interrupted:
        return result
    tested = BEST_WEIGHTS
    if not run.has(BEST_WEIGHTS):
        if not run.has(LAST_WEIGHTS):
            log("warning: no epoch was trained, so there are no weights to test")
            return result
        tested = LAST_WEIGHTS
        log(f"warning: no epoch had a finite validation Jaccard, so no best weights were "
            f"saved; testing the last weights ({run.path(LAST_WEIGHTS)}) instead")
    set_all_param_values(top, run.read_weights(tested))
    err_test, acc_test, jacc_totals = run_validation(functions.val_fn, test_iter, n_classes,
                                                     share=share)
    per_class, jacc_test = jaccard_from_totals(jacc_totals)
    log(final_line(err_test, acc_test, per_class, jacc_test))
    result["test"] = {"loss": err_test, "accuracy": acc_test,
                      "jaccard_per_class": per_class.tolist(), "jaccard": jacc_test,
                      "weights": tested}
    if writer:
        atomic_write(run.path(RESULTS_FILE),
                     lambda stream: stream.write(json.dumps(result, indent=2).encode()))
    return result


def _silent(line):
    """The log of a process that does not print (not process 0 of a multi-process run)."""


def _batch_share(config, splits, count):
    """``share(X, Y) -> (X, y)``: this process's slice of a batch, labels flattened.

    One process: the whole batch. With ``config.devices`` (resolved to ``count`` devices
    by :func:`train`, which gives the compile layer's error for more devices than
    present), every batch size and last batch is checked against the count, before
    anything is compiled. In a multi-process run,
    process ``i`` of ``P`` feeds rows ``i·B/P .. (i+1)·B/P`` of each batch (the compiled
    functions assemble the global batch from the processes' consecutive slices).
    """
    def whole(X, Y):
        return X, Y.reshape(-1)

    if config.devices is None:
        return whole
    _check_devices(config, count)
    _check_last_batches(config, splits, count)
    import jax

    processes, rank = jax.process_count(), jax.process_index()
    if processes == 1:
        return whole

    def local(X, Y):
        rows = len(X) // processes
        part = slice(rank * rows, (rank + 1) * rows)
        return X[part], Y[part].reshape(-1)
    return local


def _nan_jaccard_reason(jacc_totals, per_class, early_stop_class):
    """Why the validation Jaccard is NaN, in words."""
    totals = np.asarray(jacc_totals)
    if not totals[1].any():
        return ("validation Jaccard is NaN: every validation pixel is void, so no class can "
                "be scored")
    absent = [k for k in range(totals.shape[1]) if totals[1, k] == 0]
    nan = [k for k, value in enumerate(per_class) if not np.isfinite(value)]
    which = absent or nan
    subject = (f"class {early_stop_class}'s validation Jaccard (-early_stop_class)"
               if early_stop_class is not None else "mean validation Jaccard")
    return (f"{subject} is NaN: class(es) {which} occur neither in the validation labels nor "
            "in the predictions (0/0)")


def _diverged_message(run, epoch, cost, Y, void_labels):
    """The TrainingDiverged message: the likely cause and only the files that exist."""
    if np.isin(Y, void_labels).all():
        cause = (f"every pixel of this training batch is void (label {void_labels[0]}), so the "
                 "void-masked loss is 0/0; check the training label maps (a larger batch size "
                 "or a crop that keeps labelled pixels avoids all-void batches)")
    else:
        cause = "try a smaller -learning_rate"
    saved = [name for name in (BEST_WEIGHTS, LAST_WEIGHTS) if os.path.exists(run.path(name))]
    where = (f"the weights saved so far are in {', '.join(run.path(n) for n in saved)}"
             if saved else "no weights were saved yet")
    return f"epoch {epoch}: training loss is {cost}; stopping. {cause}; {where}"
