"""The tutorial's ``train_fcn8.py``: Adam on a void-masked cross-entropy, Jaccard early stopping.

:func:`build_functions` compiles the tutorial's two functions (``train_fn`` with the Adam
updates and ``val_fn`` returning loss, accuracy and the Jaccard totals) and :func:`train` runs
its loop: one line per epoch (printed and appended to ``fcn8_output.log``), the best and last
weights in Lasagne's ``.npz`` format, the error histories, ``config.txt``, and at the end the
test scores of the best weights. On top of the original: a progress bar, ``--resume`` from the
last epoch with the optimiser state, a clean stop on Ctrl-C, a stop on a non-finite loss, and
atomic saves. Deliberate differences are listed in ``docs/faithfulness.md``.
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pytensor.tensor as pt

from . import compile as compiling
from .data import Augmentation, BatchIterator, load_dataset
from .layers import get_all_params, get_output, set_all_param_values
from .metrics import accuracy_metric, crossentropy_metric, jaccard_from_totals, jaccard_metric
from .models import BUILDERS
from .regularization import l2, regularize_network_params
from .updates import adam, get_update_state_values, set_update_state_values
from .weights import atomic_savez, load_npz, read_npz_values, save_npz

__all__ = [
    "TrainingConfig",
    "TrainingDiverged",
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
    seed: int = None
    model: str = "fcn8"
    device: str = "cpu"
    init_weights: str = None
    deconv_init: str = "glorot"
    dataset_options: dict = field(default_factory=dict)


@dataclass
class TrainingFunctions:
    """The compiled functions and the variables behind them."""

    train_fn: object
    val_fn: object
    predict_fn: object
    params: list
    updates: dict


def build_functions(top_layer, input_var, target_var, n_classes, void_labels,
                    learning_rate=1e-4, weight_decay=0.0, device="cpu"):
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
    train_fn = compiling.function([input_var, target_var], loss, updates=updates,
                                  device=device)
    test_prediction = get_output(top_layer, deterministic=True)
    test_loss = crossentropy_metric(test_prediction, target_var, void_labels)
    test_acc = accuracy_metric(test_prediction, target_var, void_labels)
    test_jacc = jaccard_metric(test_prediction, target_var, n_classes)
    val_fn = compiling.function([input_var, target_var], [test_loss, test_acc, test_jacc],
                                device=device)
    predict_fn = compiling.function([input_var], test_prediction, device=device)
    return TrainingFunctions(train_fn, val_fn, predict_fn, params, updates)


def run_validation(val_fn, iterator, n_classes, progress=None):
    """Mean loss and accuracy over the batches, and the Jaccard totals (2, n_classes)."""
    cost_total = 0.0
    acc_total = 0.0
    jacc_total = np.zeros((2, n_classes))
    n_batches = 0
    for X, Y in iterator:
        cost, acc, jacc = val_fn(X, Y.reshape(-1))
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
    options = dict(config.data_augmentation or {})
    options.pop("fill_mode", None)  # 'constant' is the only mode (zero / void padding)
    if not options:
        return None
    return Augmentation.from_tutorial_dict(options, flip_every_image=config.flip_every_image,
                                           void_label=void_label)


def _load_splits(config):
    options = dict(config.dataset_options)
    options["train_from_0_255"] = config.train_from_0_255
    return [load_dataset(config.dataset, config.data_dir, split, **options)
            for split in ("train", "valid", "test")]


class _Run:
    """The state of one training run: histories, patience, files."""

    def __init__(self, savepath):
        self.savepath = savepath
        self.err_train, self.err_valid, self.acc_valid, self.jacc_valid = [], [], [], []
        self.patience = 0
        self.best_jacc_val = -np.inf
        self.next_epoch = 0

    def path(self, name):
        return os.path.join(self.savepath, name)

    def save_errors(self, name):
        atomic_savez(self.path(name), self.err_valid, self.err_train, self.acc_valid,
                     self.jacc_valid)

    def save_state(self, functions):
        state = get_update_state_values(functions.updates, functions.params)
        atomic_savez(self.path(STATE_FILE), *state,
                     progress=np.array([self.next_epoch, self.patience]),
                     best_jacc_val=np.array(self.best_jacc_val),
                     histories=np.array([self.err_train, self.err_valid, self.acc_valid,
                                         self.jacc_valid], dtype=np.float64))

    def restore(self, functions, top_layer):
        with np.load(self.path(STATE_FILE), allow_pickle=False) as archive:
            n_state = sum(1 for name in archive.files if name.startswith("arr_"))
            state = [archive[f"arr_{i}"] for i in range(n_state)]
            self.next_epoch, self.patience = (int(v) for v in archive["progress"])
            self.best_jacc_val = float(archive["best_jacc_val"])
            histories = archive["histories"]
        self.err_train, self.err_valid, self.acc_valid, self.jacc_valid = (
            list(row) for row in histories) if histories.size else ([], [], [], [])
        load_npz(top_layer, self.path(LAST_WEIGHTS))
        set_update_state_values(functions.updates, functions.params, state)


def _write_config(config, path, extra):
    lines = [f"{key}: {value}" for key, value in asdict(config).items()]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    temporary = path + ".tmp"
    with open(temporary, "w") as stream:
        stream.write("\n".join(lines) + "\n")
    os.replace(temporary, path)


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
        On a NaN or infinite training loss; the best weights stay as saved.
    """
    from tqdm import tqdm

    run = _Run(config.savepath)
    if config.resume and not os.path.exists(run.path(STATE_FILE)):
        raise FileNotFoundError(
            f"--resume: no {STATE_FILE} in {config.savepath}; nothing to resume")
    os.makedirs(config.savepath, exist_ok=True)
    if config.seed is not None:
        np.random.seed(config.seed)
    train_set, valid_set, test_set = _load_splits(config)
    n_classes = train_set.n_classes
    void_labels = [train_set.void_label]
    nb_in_channels = 3
    train_iter = BatchIterator(train_set, config.batch_size[0], shuffle=True,
                               seed=config.seed,
                               augmentation=_augmentation(config, train_set.void_label))
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
    if config.init_weights:
        load_npz(top, config.init_weights)
    log("Defining and compiling training functions")
    functions = build_functions(top, input_var, target_var, n_classes, void_labels,
                                config.learning_rate, config.penal_cst, config.device)
    if config.resume:
        run.restore(functions, top)
        train_iter.epoch = run.next_epoch
        log(f"Resuming at epoch {run.next_epoch} (patience {run.patience})")
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
                cost = float(functions.train_fn(X, Y.reshape(-1)))
                if not np.isfinite(cost):
                    bar.close()
                    raise TrainingDiverged(
                        f"epoch {epoch}: training loss is {cost}; stopping. The best weights "
                        f"so far are in {run.path(BEST_WEIGHTS)} (try a smaller -learning_rate)")
                cost_train_total += cost
                bar.update(1)
                bar.set_postfix(cost=f"{cost:.4f}")
            run.err_train.append(cost_train_total / len(train_iter))
            cost_val, acc_val, jacc_totals = run_validation(functions.val_fn, val_iter,
                                                            n_classes, bar)
            bar.close()
            per_class, mean_jacc = jaccard_from_totals(jacc_totals)
            jacc_val = mean_jacc if config.early_stop_class is None \
                else per_class[config.early_stop_class]
            run.err_valid.append(cost_val)
            run.acc_valid.append(acc_val)
            run.jacc_valid.append(jacc_val)
            line = epoch_line(epoch, run.err_train[-1], cost_val, acc_val, per_class, jacc_val,
                              time.time() - start_time)
            log(line)
            with open(run.path(LOG_FILE), "a") as stream:
                stream.write(line + "\n")
            if jacc_val > run.best_jacc_val:
                run.best_jacc_val = jacc_val
                run.patience = 0
                save_npz(top, run.path(BEST_WEIGHTS))
                run.save_errors(BEST_ERRORS)
            else:
                run.patience += 1
            save_npz(top, run.path(LAST_WEIGHTS))
            run.save_errors(LAST_ERRORS)
            epoch += 1
            run.next_epoch = epoch
            run.save_state(functions)
    except KeyboardInterrupt:
        interrupted = True
        # the current weights and optimiser state go to `last`; --resume reruns this epoch
        save_npz(top, run.path(LAST_WEIGHTS))
        run.save_state(functions)
        log(f"Interrupted in epoch {epoch}: weights saved in {run.path(LAST_WEIGHTS)}; "
            "continue with --resume")
    result = {"epochs_run": epoch, "best_jacc_val": run.best_jacc_val, "test": None,
              "interrupted": interrupted}
    if interrupted or not os.path.exists(run.path(BEST_WEIGHTS)):
        return result
    set_all_param_values(top, read_npz_values(run.path(BEST_WEIGHTS)))
    err_test, acc_test, jacc_totals = run_validation(functions.val_fn, test_iter, n_classes)
    per_class, jacc_test = jaccard_from_totals(jacc_totals)
    log(final_line(err_test, acc_test, per_class, jacc_test))
    result["test"] = {"loss": err_test, "accuracy": acc_test,
                      "jaccard_per_class": per_class.tolist(), "jaccard": jacc_test}
    with open(run.path("final_results.json") + ".tmp", "w") as stream:
        json.dump(result, stream, indent=2)
    os.replace(run.path("final_results.json") + ".tmp", run.path("final_results.json"))
    return result

