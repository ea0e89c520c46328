"""The 1-D FCN tutorial's ``train_fcn1D.py`` as a recipe: cortical-layer profiles.

Adam from ``-learning_rate 0.0005``, the rate multiplied by 0.99 before every epoch (so epoch
``e`` trains at ``0.0005 * 0.99 ** (e + 1)``), on the mean categorical cross-entropy (no void,
no clipping) plus ``-penal_cst`` (the original's fixed ``weight_decay = 0.001``) times the L2
norm of the regularizable parameters; batches of 1024 profiles (``-batch_size 1024 1024 1``),
early stopping on the mean validation Jaccard (``-max_patience 25``, ``-ne 500``); the
network ``build_model(n_filters=64, filter_size=25, depth=8, block='bn_relu_conv')`` on both
channels (smooth and raw); its EPOCH line, with the training accuracy and the per-class
Jaccard list, and its file names (``new_fcn1D_model_best.npz``, ``fcn1D_errors_*.npz``,
``fcn1D_output.log``).

The original ran no test (``test_iter = None``) and its loader's 'test' set is every profile,
training ones included; the final test here scores the best weights on the validation
profiles, and says so.

``-dataset synthetic_profiles`` (the default: built in) trains the same network with
batches of 32 profiles (the same compute per epoch, more Adam steps), seeded, with a time
budget: see :data:`SYNTHETIC_DEFAULTS`.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..data import BatchIterator, load_dataset
from ..layers import get_output
from ..metrics import accuracy_metric, jaccard_metric
from ..models.fcn1d import build_model
from ..objectives import categorical_crossentropy
from ..regularization import l2, regularize_network_params
from .config import is_int
from .recipe import Data, Model, Recipe
from .run import RunFiles
from .unet import compile_functions

__all__ = ["FCN1DRecipe", "FCN1D_FILES", "TUTORIAL_DEFAULTS", "SYNTHETIC_DEFAULTS",
           "ARCHITECTURE", "LEARNING_RATE_DECAY", "epoch_line", "final_line"]

FCN1D_FILES = RunFiles(best_weights="new_fcn1D_model_best.npz",
                       last_weights="new_fcn1D_model_last.npz",
                       best_errors="fcn1D_errors_best.npz",
                       last_errors="fcn1D_errors_last.npz", log="fcn1D_output.log")

#: ``train_fcn1D.py``'s settings, for ``-dataset cortical_layers`` (unseeded, as the
#: tutorial).
TUTORIAL_DEFAULTS = dict(learning_rate=5e-4, penal_cst=1e-3, num_epochs=500, max_patience=25,
                         batch_size=(1024, 1024, 1), data_augmentation={}, seed=None)

#: Defaults for ``-dataset synthetic_profiles`` (510 training profiles, 90 validation):
#: batches of 32 (the tutorial's 1024 would make one Adam step an epoch), seeded, and a
#: time budget (counted from the start, compiling included) that stops the run before ten
#: minutes on a 2-core CPU.
SYNTHETIC_DEFAULTS = dict(learning_rate=5e-4, penal_cst=1e-3, num_epochs=60, max_patience=25,
                          batch_size=(32, 1024, 1024), data_augmentation={}, seed=1,
                          time_budget=540.0)

#: The network ``train_fcn1D.py`` builds (its hard-coded hyper-parameters; our flags).
ARCHITECTURE = dict(n_filters=64, filter_size=25, depth=8, block="bn_relu_conv",
                    smooth_or_raw="both")

#: The learning rate is multiplied by this before every epoch.
LEARNING_RATE_DECAY = 0.99


def _class_list(per_class):
    # the original printed a Python list of strings: ['0: 0.981183', '1: 0.953546', ...]
    return str([f"{index}: {value:f}" for index, value in enumerate(per_class)])


def epoch_line(epoch, cost_train, acc_train, cost_val, acc_val, jacc_per_class, jacc_val,
               seconds):
    """``train_fcn1D.py``'s per-epoch line."""
    return (f"EPOCH {epoch}: Avg cost train {cost_train:f}, acc train {acc_train:f}, cost val "
            f"{cost_val:f}, acc val {acc_val:f}, jacc val per class "
            f"{_class_list(jacc_per_class)}, jacc val {jacc_val:f} took {seconds:f} s")


def final_line(err_test, acc_test, jacc_per_class, jacc_test):
    """The final test line, in the style of the epoch line (the original had none)."""
    return (f"FINAL MODEL: err test {err_test:f}, acc test {acc_test:f}, jacc test per class "
            f"{_class_list(jacc_per_class)}, jacc test {jacc_test:f}")


class FCN1DRecipe(Recipe):
    """``train_fcn1D.py``: the 1-D FCN on ``cortical_layers`` (or ``synthetic_profiles``)."""

    datasets = ("synthetic_profiles", "cortical_layers")
    generated_datasets = ("synthetic_profiles",)
    files = FCN1D_FILES
    history_names = ("err_train", "acc_train", "err_valid", "acc_valid", "jacc_valid")

    def __init__(self, name):
        super().__init__(name)
        self.learning_rate = None

    def defaults(self, dataset):
        return dict(SYNTHETIC_DEFAULTS if dataset == "synthetic_profiles"
                    else TUTORIAL_DEFAULTS)

    def default_savepath(self, dataset):
        # the original's experiment name, from the dataset's default settings
        settings = {**ARCHITECTURE, **self.defaults(dataset)}
        name = ("fcn1D_lrate={learning_rate}_fil={n_filters}_fsizes={filter_size}"
                "_depth={depth}_data={smooth_or_raw}_decay={penal_cst}_pat={max_patience}"
                ).format(**settings)
        return f"save_models/{dataset}/{name}"

    def add_arguments(self, parser):
        parser.set_defaults(dataset="synthetic_profiles")
        parser.add_argument("--n-filters", type=int, default=ARCHITECTURE["n_filters"],
                            metavar="N", help="filters of every block (the tutorial's 64)")
        parser.add_argument("--filter-size", type=int, default=ARCHITECTURE["filter_size"],
                            metavar="K", help="odd filter length (the tutorial's 25)")
        parser.add_argument("--depth", type=int, default=ARCHITECTURE["depth"], metavar="D",
                            help="number of blocks (the tutorial's 8)")
        parser.add_argument("--block", choices=("bn_relu_conv", "conv_bn_relu"),
                            default=ARCHITECTURE["block"])
        parser.add_argument("--smooth-or-raw", choices=("both", "raw", "smooth"),
                            default=ARCHITECTURE["smooth_or_raw"],
                            help="input channels: both (smooth, raw; the tutorial's), raw or "
                                 "smooth")
        parser.add_argument("--synthetic-profiles", type=int, default=None, metavar="N",
                            help="-dataset synthetic_profiles: number of profiles (default "
                                 "600)")

    def options_from_args(self, args):
        dataset_options = {"smooth_or_raw": args.smooth_or_raw}
        if args.synthetic_profiles is not None:
            dataset_options["n_profiles"] = args.synthetic_profiles
        return {"n_filters": args.n_filters, "filter_size": args.filter_size,
                "depth": args.depth, "block": args.block, "dataset_options": dataset_options}

    def _architecture(self, config):
        return {name: config.options.get(name, ARCHITECTURE[name])
                for name in ("n_filters", "filter_size", "depth", "block")}

    def check_settings(self, config):
        architecture = self._architecture(config)
        for name, flag, low in (("n_filters", "--n-filters", 1),
                                ("filter_size", "--filter-size", 1), ("depth", "--depth", 0)):
            value = architecture[name]
            if not is_int(value) or value < low:
                raise ValueError(f"{flag} must be an integer >= {low}, got {value!r}")
        if architecture["filter_size"] % 2 == 0:
            raise ValueError(f"--filter-size must be odd (pad='same'), got "
                             f"{architecture['filter_size']}")
        if config.data_augmentation:
            raise ValueError(f"-data_augmentation: the 1-D FCN's profiles take no "
                             f"augmentation (the 2-D crops, flips and warps have no meaning "
                             f"here), got {config.data_augmentation}")
        if "n_profiles" in config.dataset_options and config.dataset != "synthetic_profiles":
            raise ValueError(f"--synthetic-profiles applies to -dataset synthetic_profiles "
                             f"only, not {config.dataset}")

    def load_data(self, config):
        train, valid = [load_dataset(config.dataset, config.data_dir, split,
                                     **config.dataset_options)
                        for split in ("train", "valid")]
        # no void (all 7 classes are scored); the final test scores the validation profiles
        return Data(train, valid, valid, n_classes=train.n_classes, void_labels=[],
                    n_channels=train.n_channels)

    def check_data(self, config, data):
        data.train.validate()
        data.valid.validate()

    def iterators(self, config, data):
        return (BatchIterator(data.train, config.batch_size[0], shuffle=True,
                              seed=config.seed),
                BatchIterator(data.valid, config.batch_size[1]),
                BatchIterator(data.test, config.batch_size[2]))

    def describe_data(self, data, iterators):
        return super().describe_data(data, iterators) + [
            "The original had no test set: the final test scores the best weights on the "
            "validation profiles"]

    def build_network(self, config, data):
        input_var = pt.tensor3("input_var")
        outputs, net = build_model(input_var, n_classes=data.n_classes,
                                   nb_in_channels=data.n_channels,
                                   **self._architecture(config))
        return Model(outputs[0], input_var, pt.ivector("target_var"), net)

    def build_functions(self, config, model, data):
        self.learning_rate = pytensor.shared(
            np.array(config.learning_rate, dtype=pytensor.config.floatX), name="learn_step")
        target = model.target_var
        prediction = get_output(model.output)
        loss = categorical_crossentropy(prediction, target).mean()
        if config.penal_cst > 0:
            loss = loss + config.penal_cst * regularize_network_params(model.output, l2)
        train_accuracy = accuracy_metric(prediction, target, data.void_labels)
        valid_prediction = get_output(model.output, deterministic=True)
        val_outputs = [categorical_crossentropy(valid_prediction, target).mean(),
                       accuracy_metric(valid_prediction, target, data.void_labels),
                       jaccard_metric(valid_prediction, target, data.n_classes)]
        return compile_functions(config, model, loss, [loss, train_accuracy], val_outputs,
                                 self.learning_rate)

    def on_epoch_start(self, trainer, epoch):
        rate = trainer.config.learning_rate * LEARNING_RATE_DECAY ** (epoch + 1)
        self.learning_rate.set_value(np.array(rate, dtype=pytensor.config.floatX))

    def history_values(self, train_metrics, scores):
        return (train_metrics[0], train_metrics[1], scores.loss, scores.accuracy, scores.score)

    def epoch_line(self, epoch, train_metrics, scores, seconds):
        return epoch_line(epoch, train_metrics[0], train_metrics[1], scores.loss,
                          scores.accuracy, scores.jaccard_per_class, scores.score, seconds)

    def final_line(self, scores):
        return final_line(scores.loss, scores.accuracy, scores.jaccard_per_class,
                          scores.jaccard)
