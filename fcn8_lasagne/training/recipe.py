"""What a model brings to the one trainer: :class:`Recipe`, and the registry of recipes.

A recipe holds everything model-specific: the datasets it takes and their default settings,
its own command-line flags, how its data is read and checked, its network and compiled
functions (loss, updates, metrics), its log lines, file names and error histories, the
early-stopping score and the learning-rate schedule. :class:`~.trainer.Trainer` does the
rest (save folder, resume, Ctrl-C, NaN guard, devices, time budget, final test) the same way
for every recipe. :class:`~.fcn8.FCN8Recipe` is a complete example.

A model is registered in :data:`RECIPES` as ``"module:Class"``; :func:`get_recipe` imports
the module only when the model is used and returns a new instance (which may keep state for
one run, e.g. a shared learning rate).
"""

import importlib
import os
from dataclasses import dataclass, field

import numpy as np

from .run import RunFiles

__all__ = ["Recipe", "Data", "Model", "Scores", "TrainingFunctions", "RECIPES",
           "get_recipe"]

#: Model name -> ``"module:RecipeClass"``, imported only when the model is used.
RECIPES = {
    "fcn8": "fcn8_lasagne.training.fcn8:FCN8Recipe",
    "fcn16": "fcn8_lasagne.training.fcn8:FCN8Recipe",
    "fcn32": "fcn8_lasagne.training.fcn8:FCN8Recipe",
    "unet": "fcn8_lasagne.training.unet:UNetRecipe",
    "fcn1d": "fcn8_lasagne.training.fcn1d:FCN1DRecipe",
    "fcn_resnet50": "fcn8_lasagne.training.fcn_resnet:FCNResNetRecipe",
    "fcn_resnet101": "fcn8_lasagne.training.fcn_resnet:FCNResNetRecipe",
}


def get_recipe(name):
    """A new recipe for the model ``name`` (a key of :data:`RECIPES`).

    Raises
    ------
    ValueError
        If ``name`` is not a registered model.
    ImportError
        If the recipe's module cannot be imported (naming the model and the module).
    """
    try:
        target = RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}: expected one of "
                         f"{', '.join(RECIPES)}") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        missing = isinstance(error, ModuleNotFoundError) and error.name == module_name
        raise ImportError(
            f"model {name!r}: its recipe module {module_name} "
            + ("does not exist in this installation" if missing
               else f"cannot be imported ({type(error).__name__}: {error})")) from error
    try:
        recipe_class = getattr(module, class_name)
    except AttributeError:
        raise ImportError(f"model {name!r}: {module_name} defines no {class_name}") from None
    return recipe_class(name)


@dataclass
class Data:
    """The three splits of a run and what the network needs to know of them.

    Attributes
    ----------
    train, valid : dataset
        Objects with ``len()``, ``validate(check=None)`` and what the recipe's iterators
        read (the :mod:`fcn8_lasagne.data` datasets).
    test : dataset or None
        None: no final test (the trainer says so).
    n_classes : int
    void_labels : list of int
        Label values the loss and metrics ignore (empty if none).
    n_channels : int
        Input channels of the network.
    """

    train: object
    valid: object
    test: object
    n_classes: int
    void_labels: list
    n_channels: int

    def splits(self):
        return (("train", self.train), ("valid", self.valid), ("test", self.test))


@dataclass
class Model:
    """A built network: ``output`` is the layer whose parameters are saved and restored.

    Attributes
    ----------
    output : Layer
        The top layer (``get_all_param_values(output)`` is what the weight files hold).
    input_var, target_var : TensorVariable
    layers : dict
        The builder's named layers (e.g. the tutorial's ``net`` dict).
    """

    output: object
    input_var: object
    target_var: object
    layers: dict = field(default_factory=dict)


@dataclass
class TrainingFunctions:
    """The compiled functions and the variables behind them.

    ``train_fn(*batch) -> loss`` or ``[loss, metric, ...]`` (applies the updates; the
    trainer averages every output over the epoch's batches, the first is the loss),
    ``val_fn(*batch) -> [loss, accuracy, jaccard totals (2, n_classes)]``,
    ``predict_fn(X) -> probabilities``; ``params`` and ``updates`` give the optimiser state
    that ``training_state.npz`` saves.
    """

    train_fn: object
    val_fn: object
    predict_fn: object
    params: list
    updates: dict


@dataclass
class Scores:
    """One pass over a split: mean loss and accuracy, Jaccard totals and scores.

    ``score`` is the early-stopping value (:meth:`Recipe.early_stopping_score`), set for
    validation passes; NaN otherwise.
    """

    loss: float
    accuracy: float
    totals: np.ndarray
    jaccard_per_class: np.ndarray
    jaccard: float
    score: float = float("nan")


class Recipe:
    """Everything model-specific of a training run; subclass it for a model.

    Parameters
    ----------
    name : str
        The registry key the recipe was created for (``config.model``), e.g. 'fcn16'.

    Attributes
    ----------
    datasets : tuple of str
        The dataset names the model takes (the CLI refuses others).
    generated_datasets : tuple of str
        Those of :attr:`datasets` that are built in (no ``--data-dir`` needed).
    files : RunFiles
        The names of the run's files.
    history_names : tuple of str
        The error histories saved in the errors files, in order
        (:meth:`history_values` gives one value of each per epoch).
    """

    datasets = ()
    generated_datasets = ()
    files = RunFiles(best_weights="model_best.npz", last_weights="model_last.npz",
                     best_errors="errors_best.npz", last_errors="errors_last.npz",
                     log="output.log")
    history_names = ("err_valid", "err_train", "acc_valid", "jacc_valid")

    def __init__(self, name):
        self.name = name

    # --- settings ---------------------------------------------------------------------

    def defaults(self, dataset):
        """``TrainingConfig`` field values for the shared flags not given on the command
        line (e.g. ``learning_rate``, ``batch_size``, ``seed``), for ``dataset``."""
        return {}

    def add_arguments(self, parser):
        """Add the model's own flags to the ``fcn8 train`` parser (argparse)."""

    def options_from_args(self, args):
        """Settings from the model's own flags: a dict whose keys are ``TrainingConfig``
        fields (set on the config) or other names (put in ``config.options``)."""
        return {}

    def default_savepath(self, dataset):
        """The ``--savepath`` when none is given."""
        return os.path.join("save_models", dataset, f"{self.name}_data_aug")

    def check_dataset(self, dataset, flag):
        """Refuse a dataset name the model does not take (``flag``: '-dataset')."""
        if dataset not in self.datasets:
            raise ValueError(f"{flag} {dataset} is not a dataset of model {self.name}; "
                             f"expected one of {', '.join(self.datasets)}")

    def check_settings(self, config):
        """Refuse bad model-specific settings (ValueError) before the data is read."""

    # --- data -------------------------------------------------------------------------

    def load_data(self, config):
        """Open the splits (not yet read through): a :class:`Data`."""
        raise NotImplementedError

    def check_data(self, config, data):
        """Read every example once and raise a ValueError naming a bad one, before anything
        is compiled. The default validates each split without further checks."""
        for _, dataset in data.splits():
            if dataset is not None:
                dataset.validate()

    def iterators(self, config, data):
        """``(train, valid, test)`` batch iterators; each ``for`` over one is one epoch of
        ``(X, Y)`` batches. The training iterator's ``epoch`` attribute, if it has one, is
        set to the next epoch on resume. ``test`` is None when ``data.test`` is."""
        raise NotImplementedError

    def describe_data(self, data, iterators):
        """The lines logged once the data is ready (the tutorial's batch and class counts)."""
        train_iter, val_iter, test_iter = iterators
        test = len(test_iter) if test_iter is not None else 0
        return [f"Batch. train: {len(train_iter)}, val {len(val_iter)}, test {test}",
                f"Nb of classes: {data.n_classes}",
                f"Nb. of input channels: {data.n_channels}"]

    def config_entries(self, data):
        """Extra ``key: value`` entries of ``config.txt``."""
        return {"n_classes": data.n_classes, "void_labels": data.void_labels}

    # --- model ------------------------------------------------------------------------

    def build_network(self, config, data):
        """The network: a :class:`Model`."""
        raise NotImplementedError

    def build_functions(self, config, model, data):
        """Compile the training and validation functions: :class:`TrainingFunctions`.

        With ``config.devices`` they must be compiled data-parallel
        (:func:`fcn8_lasagne.compile.function` with ``devices=`` and ``batch_inputs=``)."""
        raise NotImplementedError

    def batch_inputs(self, X, Y):
        """The arguments of ``train_fn`` / ``val_fn`` for a batch (default: the images and
        the labels flattened in C order)."""
        return X, Y.reshape(-1)

    # --- schedule hooks (make them functions of the epoch / iteration: resume
    # --- reruns none of the epochs before) ------------------------------------------------

    def on_epoch_start(self, trainer, epoch):
        """Called before epoch ``epoch`` trains (also the first epoch after a resume)."""

    def on_iteration(self, trainer, iteration):
        """Called before each training step; ``iteration`` counts steps over all epochs
        (``epoch * len(train_iter) + step``)."""

    def on_epoch_end(self, trainer, epoch, scores):
        """Called after epoch ``epoch`` is committed, with its validation :class:`Scores`."""

    # --- scores, histories and lines ---------------------------------------------------

    def early_stopping_score(self, config, scores):
        """The validation value early stopping maximises: the mean Jaccard, or class
        ``config.early_stop_class``'s."""
        if config.early_stop_class is None:
            return scores.jaccard
        return float(scores.jaccard_per_class[config.early_stop_class])

    def history_values(self, train_metrics, scores):
        """This epoch's value of each of :attr:`history_names`, in order."""
        return (scores.loss, train_metrics[0], scores.accuracy, scores.score)

    def epoch_line(self, epoch, train_metrics, scores, seconds):
        """The line logged (and appended to the log file) after each epoch."""
        return (f"EPOCH {epoch}: training loss {train_metrics[0]:f}, validation loss "
                f"{scores.loss:f}, accuracy {scores.accuracy:f}, jaccard "
                f"{scores.jaccard:f} took {seconds:f} s")

    def final_line(self, scores):
        """The line logged after the final test."""
        return (f"FINAL MODEL: loss {scores.loss:f}, accuracy {scores.accuracy:f}, "
                f"jaccard {scores.jaccard:f}")
