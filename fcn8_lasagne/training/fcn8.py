"""The tutorial's ``train_fcn8.py`` as a recipe: FCN-8 (and FCN-16, FCN-32) on RGB images.

Adam on a void-masked cross-entropy (plus ``penal_cst`` times the L2 norm of the
regularizable parameters), early stopping on the validation Jaccard, the tutorial's EPOCH
and FINAL MODEL lines and its file names (``new_fcn8_model_best.npz``, ``fcn8_errors_*.npz``,
``fcn8_output.log``, for all three models as in the original).
"""

import pytensor.tensor as pt

from .. import compile as compiling
from ..data import Augmentation, BatchIterator, load_dataset
from ..layers import get_all_params, get_output
from ..metrics import accuracy_metric, crossentropy_metric, jaccard_metric
from ..models import BUILDERS
from ..models.summary import check_input_size
from ..regularization import l2, regularize_network_params
from ..updates import adam
from .defaults import SYNTHETIC_DEFAULTS, TUTORIAL_DEFAULTS
from .recipe import Data, Model, Recipe, TrainingFunctions
from .run import RunFiles

__all__ = ["FCN8Recipe", "build_functions", "epoch_line", "final_line", "FCN_DATASETS",
           "FCN8_FILES", "BEST_WEIGHTS", "LAST_WEIGHTS", "BEST_ERRORS", "LAST_ERRORS",
           "LOG_FILE"]

BEST_WEIGHTS = "new_fcn8_model_best.npz"
LAST_WEIGHTS = "new_fcn8_model_last.npz"
BEST_ERRORS = "fcn8_errors_best.npz"
LAST_ERRORS = "fcn8_errors_last.npz"
LOG_FILE = "fcn8_output.log"
FCN8_FILES = RunFiles(best_weights=BEST_WEIGHTS, last_weights=LAST_WEIGHTS,
                      best_errors=BEST_ERRORS, last_errors=LAST_ERRORS, log=LOG_FILE)

#: The datasets of RGB images that the FCN-8/16/32 models take (the others are the sibling
#: tutorials' EM stacks and 1-D profiles).
FCN_DATASETS = ("polyps912", "camvid", "folder", "synthetic")


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


def augmentation_of(config, void_label):
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


def image_size_check(dataset, split):
    """A ``validate`` check naming the split and file of an image too small for the network."""
    def check(index, image, _):
        check_input_size(image.shape[0], image.shape[1],
                         f"{split} image {dataset.image_paths[index]}")
    return check


class FCN8Recipe(Recipe):
    """``train_fcn8.py`` for 'fcn8', 'fcn16' and 'fcn32' (the builder of that name)."""

    datasets = FCN_DATASETS
    generated_datasets = ("synthetic",)
    files = FCN8_FILES
    history_names = ("err_valid", "err_train", "acc_valid", "jacc_valid")

    def defaults(self, dataset):
        return dict(SYNTHETIC_DEFAULTS if dataset == "synthetic" else TUTORIAL_DEFAULTS)

    def add_arguments(self, parser):
        parser.add_argument("--deconv-init", choices=("glorot", "bilinear"), default="glorot",
                            help="initialisation of the upsampling layers: glorot (the "
                                 "tutorial's) or bilinear")

    def options_from_args(self, args):
        return {"deconv_init": args.deconv_init}

    def check_dataset(self, dataset, flag):
        if dataset not in self.datasets:
            raise ValueError(f"{flag} {dataset} holds the U-Net or 1-D FCN tutorial's data, "
                             f"which the FCN models do not take; expected one of "
                             f"{', '.join(self.datasets)}")

    def check_settings(self, config):
        augmentation_of(config, void_label=None)

    def load_data(self, config):
        options = dict(config.dataset_options)
        options["train_from_0_255"] = config.train_from_0_255
        train, valid, test = [load_dataset(config.dataset, config.data_dir, split, **options)
                              for split in ("train", "valid", "test")]
        return Data(train, valid, test, n_classes=train.n_classes,
                    void_labels=[train.void_label], n_channels=3)

    def check_data(self, config, data):
        augmentation = augmentation_of(config, data.train.void_label)
        cropped = augmentation is not None and augmentation.crop_size is not None
        for split, dataset in data.splits():
            # a bad file, label value or image size fails now, not after epochs; training
            # images are cropped (and padded) to crop_size when there is one
            dataset.validate(None if split == "train" and cropped
                             else image_size_check(dataset, split))

    def iterators(self, config, data):
        augmentation = augmentation_of(config, data.train.void_label)
        return (BatchIterator(data.train, config.batch_size[0], shuffle=True,
                              seed=config.seed, augmentation=augmentation),
                BatchIterator(data.valid, config.batch_size[1]),
                BatchIterator(data.test, config.batch_size[2]))

    def build_network(self, config, data):
        input_var = pt.tensor4("input_var")
        target_var = pt.ivector("target_var")
        net = BUILDERS[self.name](data.n_channels, input_var, n_classes=data.n_classes,
                                  trainable=True, void_labels=data.void_labels,
                                  deconv_init=config.deconv_init)
        return Model(net["probs"], input_var, target_var, net)

    def build_functions(self, config, model, data):
        # looked up on the package, where callers (and tests) may replace it
        from fcn8_lasagne import training

        return training.build_functions(model.output, model.input_var, model.target_var,
                                        data.n_classes, data.void_labels,
                                        config.learning_rate, config.penal_cst,
                                        config.device, config.devices)

    def epoch_line(self, epoch, train_metrics, scores, seconds):
        return epoch_line(epoch, train_metrics[0], scores.loss, scores.accuracy,
                          scores.jaccard_per_class, scores.score, seconds)

    def final_line(self, scores):
        return final_line(scores.loss, scores.accuracy, scores.jaccard_per_class,
                          scores.jaccard)
