"""The U-Net tutorial's ``train_unet.py`` as a recipe: U-Net on the ISBI 2012 EM stacks.

Adam (``-learning_rate 0.0001``) on the void-masked cross-entropy of ``train_fcn8.py`` plus
``-penal_cst`` (default 0) times the L2 norm of the regularizable parameters; early stopping
on the validation Jaccard (``-max_patience 100``, ``-ne 750``); ``-batch_size 5 5 1``; the
tutorial's augmentation dict (:data:`UNET_AUGMENTATION`: rotation, shear, flips,
``fill_mode='reflect'``, ``spline_warp``, 224x224 crops); its EPOCH line (``train_fcn8.py``'s
format) and file names (``new_unet_model_best.npz``, ``unet_errors_*.npz``,
``unet_output.log``).

The ISBI test stack has no labels and the original ran no test (``test_iter = None``); the
final test here scores the best weights on the validation pages, and says so.

``-dataset synthetic_em`` (the default: built in, no download) trains the same network and
optimiser on 128x128 synthetic EM pages cut into 64x64 crops, seeded, with a time budget:
see :data:`SYNTHETIC_DEFAULTS`.
"""

import pytensor.tensor as pt

from .. import compile as compiling
from ..data import Augmentation, BatchIterator, load_dataset
from ..layers import get_all_params, get_output
from ..metrics import accuracy_metric, crossentropy_metric, jaccard_metric
from ..models.unet import build_UNet
from ..regularization import l2, regularize_network_params
from ..updates import adam
from .config import is_int
from .fcn8 import epoch_line, final_line
from .recipe import Data, Model, Recipe, TrainingFunctions
from .run import RunFiles

__all__ = ["UNetRecipe", "UNET_FILES", "UNET_AUGMENTATION", "TUTORIAL_DEFAULTS",
           "SYNTHETIC_DEFAULTS", "SYNTHETIC_EM_OPTIONS", "compile_functions"]

UNET_FILES = RunFiles(best_weights="new_unet_model_best.npz",
                      last_weights="new_unet_model_last.npz",
                      best_errors="unet_errors_best.npz", last_errors="unet_errors_last.npz",
                      log="unet_output.log")

#: ``train_unet.py``'s ``-data_augmentation`` default.
UNET_AUGMENTATION = {"rotation_range": 25, "shear_range": 0.41, "horizontal_flip": True,
                     "vertical_flip": True, "fill_mode": "reflect", "spline_warp": True,
                     "warp_sigma": 10, "warp_grid_size": 3, "crop_size": (224, 224)}

#: ``train_unet.py``'s command-line defaults, for ``-dataset isbi_em`` (unseeded, as the
#: tutorial).
TUTORIAL_DEFAULTS = dict(learning_rate=1e-4, penal_cst=0.0, num_epochs=750, max_patience=100,
                         batch_size=(5, 5, 1), data_augmentation=UNET_AUGMENTATION, seed=None)

#: Defaults for ``-dataset synthetic_em``: the tutorial's network, optimiser, batch size and
#: augmentation, on 64x64 crops of 128x128 pages (:data:`SYNTHETIC_EM_OPTIONS`), so that an
#: epoch (5 steps and the 5 validation pages) takes about a minute on a loaded 2-core CPU;
#: seeded; the time budget (counted from the start, compiling included) stops the run
#: before ten minutes.
SYNTHETIC_DEFAULTS = dict(learning_rate=1e-4, penal_cst=0.0, num_epochs=40, max_patience=100,
                          batch_size=(5, 5, 5),
                          data_augmentation=dict(UNET_AUGMENTATION, crop_size=(64, 64)),
                          seed=1, time_budget=540.0)

#: The synthetic EM stacks the U-Net's synthetic run reads unless told otherwise
#: (``--synthetic-pages``, ``--synthetic-page-size``).
SYNTHETIC_EM_OPTIONS = {"n_pages": 30, "page_size": (128, 128)}

#: Four 2x2 poolings: with ``pad='same'`` the output has the input's size only for sides
#: divisible by this.
_SIZE_MULTIPLE = 16


def compile_functions(config, model, loss, train_outputs, val_outputs, learning_rate):
    """Compile ``train_fn`` (Adam at ``learning_rate`` on ``loss``, returning
    ``train_outputs``) and ``val_fn`` (returning ``val_outputs``), data-parallel over
    ``config.devices`` when set.

    Returns
    -------
    TrainingFunctions
        Without ``predict_fn`` (the trainer does not use it).
    """
    params = get_all_params(model.output, trainable=True)
    updates = adam(loss, params, learning_rate=learning_rate)
    inputs = [model.input_var, model.target_var]
    parallel = {} if config.devices is None else dict(devices=config.devices,
                                                      batch_inputs=inputs)
    train_fn = compiling.function(inputs, train_outputs, updates=updates, device=config.device,
                                  **parallel)
    val_fn = compiling.function(inputs, val_outputs, device=config.device, **parallel)
    return TrainingFunctions(train_fn, val_fn, None, params, updates)


def _check_side(height, width, what):
    if height % _SIZE_MULTIPLE or width % _SIZE_MULTIPLE:
        raise ValueError(
            f"{what}: the U-Net (four 2x2 poolings, pad='same') needs a height and width "
            f"divisible by {_SIZE_MULTIPLE}, got {height}x{width}")


def _augmentation(config, void_label):
    options = dict(config.data_augmentation or {})
    augmentation = Augmentation.from_tutorial_dict(
        options, flip_every_image=config.flip_every_image, void_label=void_label)
    if augmentation.crop_size is not None:
        _check_side(*augmentation.crop_size,
                    f"-data_augmentation crop_size {list(augmentation.crop_size)}")
    return None if augmentation.is_identity else augmentation


class UNetRecipe(Recipe):
    """``train_unet.py``: U-Net on ``isbi_em`` (or the built-in ``synthetic_em``)."""

    datasets = ("synthetic_em", "isbi_em")
    generated_datasets = ("synthetic_em",)
    files = UNET_FILES
    history_names = ("err_valid", "err_train", "acc_valid", "jacc_valid")

    def defaults(self, dataset):
        return dict(SYNTHETIC_DEFAULTS if dataset == "synthetic_em" else TUTORIAL_DEFAULTS)

    def add_arguments(self, parser):
        parser.set_defaults(dataset="synthetic_em")
        parser.add_argument("--base-n-filters", type=int, default=64, metavar="N",
                            help="filters of the first U-Net block (the tutorial's 64)")
        parser.add_argument("--synthetic-pages", type=int, default=None, metavar="N",
                            help="-dataset synthetic_em: pages per stack (default "
                                 f"{SYNTHETIC_EM_OPTIONS['n_pages']})")
        parser.add_argument("--synthetic-page-size", type=int, nargs=2, default=None,
                            metavar=("H", "W"),
                            help="-dataset synthetic_em: page size (default "
                                 f"{SYNTHETIC_EM_OPTIONS['page_size'][0]}x"
                                 f"{SYNTHETIC_EM_OPTIONS['page_size'][1]})")

    def options_from_args(self, args):
        dataset_options = {}
        if args.synthetic_pages is not None:
            dataset_options["n_pages"] = args.synthetic_pages
        if args.synthetic_page_size is not None:
            dataset_options["page_size"] = tuple(args.synthetic_page_size)
        return {"base_n_filters": args.base_n_filters, "dataset_options": dataset_options}

    def check_settings(self, config):
        base = config.options.get("base_n_filters", 64)
        if not is_int(base) or base < 1:
            raise ValueError(f"--base-n-filters must be a positive integer, got {base!r}")
        if config.dataset != "synthetic_em":
            given = sorted(set(config.dataset_options) & set(SYNTHETIC_EM_OPTIONS))
            if given:
                flags = {"n_pages": "--synthetic-pages", "page_size": "--synthetic-page-size"}
                raise ValueError(f"{', '.join(flags[name] for name in given)} applies to "
                                 f"-dataset synthetic_em only, not {config.dataset}")
        _augmentation(config, void_label=None)

    def load_data(self, config):
        options = dict(config.dataset_options)
        if config.dataset == "synthetic_em":
            options = {**SYNTHETIC_EM_OPTIONS, **options}
        options["train_from_0_255"] = config.train_from_0_255
        train, valid = [load_dataset(config.dataset, config.data_dir, split, **options)
                        for split in ("train", "valid")]
        # the test stack has no labels: the final test scores the validation pages
        return Data(train, valid, valid, n_classes=train.n_classes,
                    void_labels=[train.void_label], n_channels=train.n_channels)

    def check_data(self, config, data):
        data.train.validate()
        data.valid.validate()
        _check_side(*data.valid.page_size,
                    f"{data.valid.volume_path}: the validation pages")
        augmentation = _augmentation(config, data.train.void_label)
        if augmentation is None or augmentation.crop_size is None:
            _check_side(*data.train.page_size, f"{data.train.volume_path}: the training pages")

    def iterators(self, config, data):
        augmentation = _augmentation(config, data.train.void_label)
        return (BatchIterator(data.train, config.batch_size[0], shuffle=True,
                              seed=config.seed, augmentation=augmentation),
                BatchIterator(data.valid, config.batch_size[1]),
                BatchIterator(data.test, config.batch_size[2]))

    def describe_data(self, data, iterators):
        lines = super().describe_data(data, iterators)
        pages = data.valid.pages
        return lines + [f"The test stack has no labels: the final test scores the best "
                        f"weights on the validation pages {pages[0]}..{pages[-1]}"]

    def build_network(self, config, data):
        net = build_UNet(n_input_channels=data.n_channels, num_output_classes=data.n_classes,
                         base_n_filters=config.options.get("base_n_filters", 64),
                         do_dropout=False, input_dim=(None, None))
        return Model(net["output_flattened"], net["input"].input_var,
                     pt.ivector("target_var"), net)

    def build_functions(self, config, model, data):
        target, void = model.target_var, data.void_labels
        loss = crossentropy_metric(get_output(model.output), target, void)
        if config.penal_cst > 0:
            loss = loss + config.penal_cst * regularize_network_params(model.output, l2)
        test_prediction = get_output(model.output, deterministic=True)
        val_outputs = [crossentropy_metric(test_prediction, target, void),
                       accuracy_metric(test_prediction, target, void),
                       jaccard_metric(test_prediction, target, data.n_classes)]
        return compile_functions(config, model, loss, loss, val_outputs, config.learning_rate)

    def epoch_line(self, epoch, train_metrics, scores, seconds):
        return epoch_line(epoch, train_metrics[0], scores.loss, scores.accuracy,
                          scores.jaccard_per_class, scores.score, seconds)

    def final_line(self, scores):
        return final_line(scores.loss, scores.accuracy, scores.jaccard_per_class,
                          scores.jaccard)
