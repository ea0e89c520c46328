"""Training: one :class:`Trainer` for every model, a :class:`Recipe` per model.

``train(config)`` runs ``Trainer(config, get_recipe(config.model))``: the trainer does what
every model shares (save folder, resume, Ctrl-C, NaN guard, devices, time budget, learning
curves, final test), the recipe what is model-specific. :class:`FCN8Recipe` is the
tutorial's ``train_fcn8.py`` (FCN-8/16/32): Adam on a void-masked cross-entropy, Jaccard
early stopping, one line per epoch (printed and appended to ``fcn8_output.log``), the best
and last weights in Lasagne's ``.npz`` format, the error histories, ``config.txt``, and at
the end the test scores of the best weights. On top of the original: a progress bar,
``--resume`` from the last epoch with the optimiser state (refused if
``training_state.npz`` does not match the weight files it records), a refusal to start over
an existing run unless ``overwrite``, all three splits read and checked before compiling, a
clean stop on Ctrl-C (never in the middle of an epoch's saves), a stop on a non-finite loss,
a warning and a test of the last weights when validation Jaccard is NaN, atomic saves
(``training_state.npz`` written last), a learning-curve PNG after each epoch, a time budget,
and data-parallel training (``TrainingConfig.devices``; over several processes after
:func:`fcn8_lasagne.compile.initialize_distributed`, where only process 0 prints and writes).
Deliberate differences are listed in ``docs/faithfulness.md``.
"""

from .config import TrainingConfig, check_config
from .config import check_devices as _check_devices
from .config import check_early_stop_class as _check_early_stop_class
from .config import check_last_batches as _check_last_batches
from .curves import render_learning_curves, write_learning_curves
from .defaults import SYNTHETIC_DEFAULTS, TUTORIAL_DEFAULTS
from .fcn8 import (
    BEST_ERRORS,
    BEST_WEIGHTS,
    FCN8_FILES,
    LAST_ERRORS,
    LAST_WEIGHTS,
    LOG_FILE,
    FCN8Recipe,
    build_functions,
    epoch_line,
    final_line,
)
from .fcn8 import augmentation_of as _augmentation
from .recipe import RECIPES, Data, Model, Recipe, Scores, TrainingFunctions, get_recipe
from .run import RunFiles, RunFolder, RunMismatch
from .trainer import (
    EpochResult,
    Trainer,
    TrainingDiverged,
    check_settings,
    diverged_message as _diverged_message,
    nan_jaccard_reason as _nan_jaccard_reason,
    run_validation,
    train,
)

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
    "Trainer",
    "EpochResult",
    "Recipe",
    "FCN8Recipe",
    "Data",
    "Model",
    "Scores",
    "RunFiles",
    "RunFolder",
    "RECIPES",
    "get_recipe",
    "check_config",
    "render_learning_curves",
    "write_learning_curves",
    "TUTORIAL_DEFAULTS",
    "SYNTHETIC_DEFAULTS",
]

STATE_FILE = FCN8_FILES.state
RESULTS_FILE = FCN8_FILES.results
#: The files that make up an FCN-8 training run in ``savepath`` (a new run refuses to start
#: over them unless ``overwrite``).
RUN_FILES = FCN8_FILES.run_files()


def existing_run_files(savepath, files=FCN8_FILES):
    """The files of a training run (named by ``files``) already in ``savepath``."""
    return RunFolder(savepath, files, ()).existing_files()
