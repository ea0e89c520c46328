"""The one training loop, for every model: :class:`Trainer` runs a :class:`~.recipe.Recipe`.

Shaped like pytorch-fcn's trainer: :meth:`Trainer.setup` (settings and save-folder checks,
data read and checked before compiling, the network and its compiled functions),
:meth:`Trainer.train_epoch`, :meth:`Trainer.validate`, :meth:`Trainer.commit_epoch` (one
epoch's files as a group under deferred Ctrl-C, the state last), :meth:`Trainer.should_stop`
(epochs, patience, time budget) and :meth:`Trainer.test`; :meth:`Trainer.train` is the loop.
The guarantees are the same for every recipe: a used ``savepath`` is refused unless
``resume`` (fingerprint-checked) or ``overwrite``, Ctrl-C never interrupts a save, a
non-finite training loss stops the run (:class:`TrainingDiverged`), data-parallel batches are
checked before compiling, stale temporaries are removed, and only process 0 of a
multi-process run prints and writes.
"""

import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import compile as compiling
from ..files import atomic_write
from ..layers import get_all_param_values, set_all_param_values
from ..metrics import jaccard_from_totals
from ..ops import memory as _memory
from ..weights import read_npz_values
from .config import check_config, check_devices, check_early_stop_class, check_last_batches
from .curves import write_learning_curves
from .recipe import Scores, get_recipe
from .run import RunFolder, sigint_deferred, write_config

__all__ = ["Trainer", "EpochResult", "TrainingDiverged", "train", "check_settings", "run_validation"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochResult:
    """One trained and validated epoch, not yet committed.

    Attributes
    ----------
    line : str
        The recipe's epoch line (already logged; appended to the log file on commit).
    history : tuple of float
        The epoch's value of each of the recipe's ``history_names``.
    curve : list of float
        Training loss, validation loss, validation Jaccard per class (learning curves).
    improved : bool
        Whether the early-stopping score beats the best so far (the best files are
        written).
    scores : Scores
        The validation scores.
    """

    line: str
    history: tuple
    curve: list
    improved: bool
    scores: Scores


def check_settings(config, recipe=None):
    """Reject bad settings (shared ones, then the recipe's) before any work.

    :meth:`Trainer.setup` calls it first; ``fcn8 train`` also calls it before printing
    anything.

    Raises
    ------
    ValueError
        Naming the flag, the value and what is accepted (an unknown ``model`` too).
    """
    check_config(config)
    (recipe or get_recipe(config.model)).check_settings(config)


def run_validation(val_fn, iterator, n_classes, progress=None, share=None):
    """Mean loss and accuracy over the batches, and the Jaccard totals (2, n_classes).

    ``share(X, Y)`` gives what ``val_fn`` takes of a batch (default: the whole batch, labels
    flattened; in a multi-process run, this process's slice)."""
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


def train(config, log=print, progress=True):
    """Train the model ``config.model`` with its recipe: ``Trainer(config, recipe).train()``.

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
        See :meth:`Trainer.train`.
    """
    return Trainer(config, get_recipe(config.model), log=log, progress=progress).train()


class Trainer:
    """One training run of ``recipe`` with ``config``.

    Parameters
    ----------
    config : TrainingConfig
    recipe : Recipe, optional
        Default: ``get_recipe(config.model)``.
    log : callable
        Receives each printed line (not called in processes other than 0).
    progress : bool
        Show a tqdm bar per epoch on stderr.

    Attributes
    ----------
    run : RunFolder
        Progress, histories, best score and the save folder.
    data : Data
    model : Model
    functions : TrainingFunctions
    train_iter, val_iter, test_iter : iterators
    epoch : int
        The epoch to train next.
    stop_reason : str or None
        'epochs', 'patience' or 'time budget' once the loop has ended.
    """

    def __init__(self, config, recipe=None, log=print, progress=True):
        self.config = config
        self.recipe = recipe if recipe is not None else get_recipe(config.model)
        self.writer = compiling.is_writer()
        # another process of a multi-process run prints and writes
        self.log = log if self.writer else _silent
        self.progress = progress and self.writer
        self.run = RunFolder(config.savepath, self.recipe.files, self.recipe.history_names,
                             self.writer)
        self.data = self.model = self.functions = None
        self.train_iter = self.val_iter = self.test_iter = None
        self.epoch = 0
        self.iteration = 0
        #: the time (seconds) of the time budget and of epoch durations
        self.clock = time.monotonic
        self.started = None
        self.epoch_seconds = None
        self.stop_reason = None
        self._feed = None
        self._replaced = []

    # --- set-up -----------------------------------------------------------------------

    def check(self):
        """Settings and save folder: refuse bad ones before any data is read.

        Raises ValueError (settings), FileNotFoundError (nothing to resume) or
        FileExistsError (a used ``savepath`` without ``resume`` / ``overwrite``)."""
        check_settings(self.config, self.recipe)
        self._replaced = self.run.check_start(self.config.resume, self.config.overwrite)
        line = self.run.remove_stale_temporaries()
        if line:  # left by a process killed while saving (atomic_write's temporaries)
            self.log(line)

    def setup(self):
        """Checks, data (read and checked before compiling), network, compiled functions,
        resume or overwrite, ``config.txt``."""
        config, recipe = self.config, self.recipe
        self.check()
        init_values = None
        if config.init_weights:  # read (and checked) before the data and the network
            init_values = read_npz_values(config.init_weights,
                                          allow_nonfinite=config.allow_nonfinite)
        # resolved before seeding: starting JAX's backend draws from NumPy's global generator
        count = (None if config.devices is None
                 else len(compiling._resolve_devices(config.devices, config.device)))
        if config.seed is not None:
            np.random.seed(config.seed)
        self.data = data = recipe.load_data(config)
        recipe.check_data(config, data)
        check_early_stop_class(config, data.n_classes)
        self._feed = self._batch_feed(count)
        if self.writer:
            os.makedirs(config.savepath, exist_ok=True)
        self.train_iter, self.val_iter, self.test_iter = recipe.iterators(config, data)
        for line in recipe.describe_data(data, (self.train_iter, self.val_iter,
                                                self.test_iter)):
            self.log(line)
        self.model = recipe.build_network(config, data)
        if init_values is not None:
            try:
                set_all_param_values(self.model.output, init_values)
            except ValueError as error:
                raise ValueError(f"--init-weights {config.init_weights}: {error} (is this a "
                                 f"{config.model} weight file?)") from None
        self.log("Defining and compiling training functions")
        self.functions = recipe.build_functions(config, self.model, data)
        if config.resume:
            self.run.restore(self.functions, self.model.output, self.log)
            if hasattr(self.train_iter, "epoch"):
                self.train_iter.epoch = self.run.next_epoch
            self.log(f"Resuming at epoch {self.run.next_epoch} (patience "
                     f"{self.run.patience})")
        elif self._replaced and self.writer:
            # --overwrite: the old run goes only now that the new one is ready
            for name in self._replaced:
                os.unlink(self.run.path(name))
            self.log(f"--overwrite: removed the previous run's {', '.join(self._replaced)}")
        self.epoch = self.run.next_epoch
        self.iteration = self.epoch * len(self.train_iter)
        if self.writer:
            write_config(config, self.run.path(recipe.files.config),
                         recipe.config_entries(data))

    def _batch_feed(self, count):
        """``feed(X, Y)``: this process's slice of a batch as the functions' arguments.

        One process: the whole batch. With ``config.devices`` (resolved to ``count``
        devices, which gives the compile layer's error for more devices than present),
        every batch size and last batch is checked against the count, before anything is
        compiled. In a multi-process run, process ``i`` of ``P`` feeds rows
        ``i·B/P .. (i+1)·B/P`` of each batch (the compiled functions assemble the global
        batch from the processes' consecutive slices).
        """
        config, inputs = self.config, self.recipe.batch_inputs
        if config.devices is None:
            return inputs
        check_devices(config, count)
        check_last_batches(config, [dataset for _, dataset in self.data.splits()], count)
        import jax

        processes, rank = jax.process_count(), jax.process_index()
        if processes == 1:
            return inputs

        def local(X, Y):
            rows = len(X) // processes
            part = slice(rank * rows, (rank + 1) * rows)
            return inputs(X[part], Y[part])
        return local

    # --- one epoch --------------------------------------------------------------------

    def train_epoch(self, bar=None):
        """Train one epoch; return the mean of each ``train_fn`` output (loss first).

        Raises
        ------
        TrainingDiverged
            On a NaN or infinite training loss.
        """
        totals = None
        n_batches = 0
        for X, Y in self.train_iter:
            self.recipe.on_iteration(self, self.iteration)
            outputs = np.atleast_1d(np.asarray(self.functions.train_fn(*self._feed(X, Y)),
                                               dtype=np.float64))
            cost = float(outputs[0])
            if not np.isfinite(cost):
                raise TrainingDiverged(self._diverged_message(cost, Y))
            totals = outputs if totals is None else totals + outputs
            n_batches += 1
            self.iteration += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(cost=f"{cost:.4f}")
        return [float(value) for value in totals / n_batches]

    def validate(self, iterator, bar=None):
        """Loss, accuracy and Jaccard of the current weights over ``iterator``: Scores."""
        loss, accuracy, totals = run_validation(self.functions.val_fn, iterator,
                                                self.data.n_classes, bar, self._feed)
        per_class, mean = jaccard_from_totals(totals)
        return Scores(loss, accuracy, totals, per_class, mean)

    def run_epoch(self):
        """Train and validate epoch :attr:`epoch` and log its line; nothing is written
        yet (that is :meth:`commit_epoch`). Returns an :class:`EpochResult`."""
        from tqdm import tqdm

        start_time = time.time()
        epoch = self.epoch
        self.recipe.on_epoch_start(self, epoch)
        bar = tqdm(total=len(self.train_iter) + len(self.val_iter), desc=f"epoch {epoch}",
                   disable=not self.progress, leave=False)
        try:
            train_metrics = self.train_epoch(bar)
            scores = self.validate(self.val_iter, bar)
        finally:
            bar.close()
        scores.score = self.recipe.early_stopping_score(self.config, scores)
        line = self.recipe.epoch_line(epoch, train_metrics, scores, time.time() - start_time)
        self.log(line)
        if not np.isfinite(scores.score):
            reason = nan_jaccard_reason(scores.totals, scores.jaccard_per_class,
                                        self.config.early_stop_class)
            self.log(f"warning: epoch {epoch}: {reason}; this epoch cannot count as the best "
                     "(patience grows)"
                     + ("" if self.run.has(self.recipe.files.best_weights) else
                        "; if no epoch has a finite validation Jaccard, the last weights are "
                        "tested"))
        return EpochResult(
            line=line, history=self.recipe.history_values(train_metrics, scores),
            curve=[train_metrics[0], scores.loss, *scores.jaccard_per_class],
            improved=bool(scores.score > self.run.best_score),  # False for NaN
            scores=scores)

    def commit_epoch(self, result):
        """Write every file of the epoch, then commit it in memory, then the state, the log
        line and the learning curves; Ctrl-C waits until all is written."""
        run, files = self.run, self.recipe.files
        with sigint_deferred():
            histories = [history + [value]
                         for history, value in zip(run.history_rows(), result.history)]
            fingerprints = dict(run.fingerprints)
            weights = get_all_param_values(self.model.output)
            if result.improved:
                fingerprints[files.best_weights] = run.write(files.best_weights, weights)
                fingerprints[files.best_errors] = run.write(files.best_errors, histories)
            fingerprints[files.last_weights] = run.write(files.last_weights, weights)
            del weights
            fingerprints[files.last_errors] = run.write(files.last_errors, histories)
            run.histories = dict(zip(run.history_names, histories))
            run.curves = run.curves + [result.curve]
            if result.improved:
                run.best_score = result.scores.score
                run.patience = 0
            else:
                run.patience += 1
            run.fingerprints = fingerprints
            self.epoch += 1
            run.next_epoch = self.epoch
            run.save_state(self.functions)
            run.append_log(result.line)
            if self.writer:
                self._write_curves()

    def _write_curves(self):
        """The learning-curve PNG of the epochs so far (the dataset's class names, if it
        has one per class)."""
        names = getattr(self.data.train, "class_names", None)
        if names is None or len(names) != self.data.n_classes:
            names = None
        write_learning_curves(self.run.path(self.recipe.files.curves), self.run.curves,
                              self.data.n_classes,
                              title=f"{self.config.model} on {self.config.dataset}",
                              class_names=names)

    def should_stop(self):
        """The reason not to start epoch :attr:`epoch` ('epochs', 'patience', 'time
        budget'), or None; a time-budget stop is logged."""
        config = self.config
        if self.epoch >= config.num_epochs:
            return "epochs"
        if self.run.patience >= config.max_patience:
            return "patience"
        if config.time_budget is not None and self.epoch_seconds is not None:
            elapsed = self.clock() - self.started
            if _agreed(elapsed + self.epoch_seconds > config.time_budget):
                self.log(f"Stopping before epoch {self.epoch}: the time budget of "
                         f"{config.time_budget:g} s would be exceeded ({elapsed:.1f} s "
                         f"elapsed, the last epoch took {self.epoch_seconds:.1f} s)")
                return "time budget"
        return None

    def save_interrupted(self):
        """After Ctrl-C in training or validation (never while saving): the current weights
        and optimiser state go to the last-weights file, with the histories and best of the
        epochs completed before; ``resume`` reruns this epoch."""
        files = self.recipe.files
        with sigint_deferred():
            self.run.fingerprints[files.last_weights] = self.run.write(
                files.last_weights, get_all_param_values(self.model.output))
            self.run.save_state(self.functions)
        self.log(f"Interrupted in epoch {self.epoch}: weights saved in "
                 f"{self.run.path(files.last_weights)}; continue with --resume")

    # --- the final test ----------------------------------------------------------------

    def test(self):
        """Test the best weights (the last ones if no epoch scored) on the test split and
        write the results file; return the test dict, or None if there is nothing to test."""
        run, files = self.run, self.recipe.files
        if self.test_iter is None:
            self.log(f"no test split in dataset {self.config.dataset}: no final test")
            return None
        tested = files.best_weights
        if not run.has(files.best_weights):
            if not run.has(files.last_weights):
                self.log("warning: no epoch was trained, so there are no weights to test")
                return None
            tested = files.last_weights
            self.log(f"warning: no epoch had a finite validation Jaccard, so no best weights "
                     f"were saved; testing the last weights ({run.path(files.last_weights)}) "
                     "instead")
        set_all_param_values(self.model.output, run.read_weights(tested))
        scores = self.validate(self.test_iter)
        self.log(self.recipe.final_line(scores))
        return {"loss": scores.loss, "accuracy": scores.accuracy,
                "jaccard_per_class": scores.jaccard_per_class.tolist(),
                "jaccard": scores.jaccard, "weights": tested}

    # --- the loop -----------------------------------------------------------------------

    def train(self):
        """Set up, train until :meth:`should_stop`, test.

        Returns
        -------
        dict
            ``epochs_run``, ``best_jacc_val``, ``test`` (loss, accuracy, per-class and mean
            Jaccard of the best weights, or None if interrupted), ``interrupted`` and
            ``stop_reason``.

        Raises
        ------
        TrainingDiverged
            On a NaN or infinite training loss; the files stay as the last epoch saved them.
        FileExistsError
            If ``savepath`` already holds a run and neither ``resume`` nor ``overwrite`` is
            set.
        RunMismatch
            On ``resume``, if the state file does not match the weight or error files.
        ValueError
            If a split holds a bad example, or a setting is out of range: all checked
            before compiling.
        """
        # a training loop allocates the same large arrays every step: keep them
        with _memory.caching():
            return self._train()

    def _train(self):
        """:meth:`train` without the allocator setting."""
        self.started = self.clock()
        self.setup()
        self.log("Start training")
        interrupted = False
        try:
            while (reason := self.should_stop()) is None:
                start = self.clock()
                result = self.run_epoch()
                self.commit_epoch(result)
                self.recipe.on_epoch_end(self, self.epoch - 1, result.scores)
                self.epoch_seconds = self.clock() - start
            self.stop_reason = reason
        except KeyboardInterrupt:
            interrupted = True
            self.save_interrupted()
        result = {"epochs_run": self.epoch, "best_jacc_val": self.run.best_score,
                  "test": None, "interrupted": interrupted, "stop_reason": self.stop_reason}
        if interrupted:
            return result
        result["test"] = self.test()
        if result["test"] is not None and self.writer:
            atomic_write(self.run.path(self.recipe.files.results),
                         lambda stream: stream.write(json.dumps(result, indent=2).encode()))
        return result

    # --- messages -----------------------------------------------------------------------

    def _diverged_message(self, cost, Y):
        """The TrainingDiverged message: the likely cause and only the files that exist."""
        return diverged_message(self.run, self.epoch, cost, Y, self.data.void_labels)


def _process_count():
    """The number of processes of a multi-process JAX run (1 without one)."""
    jax = sys.modules.get("jax")
    return 1 if jax is None else int(jax.process_count())


def _agreed(decision):
    """Process 0's ``decision`` in every process of a multi-process run (each measures
    its own time, and processes stopping at different epochs would wait for each other
    forever); ``decision`` itself in a one-process run."""
    if _process_count() == 1:
        return decision
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.array(decision)))


def _silent(line):
    """The log of a process that does not print (not process 0 of a multi-process run)."""


def nan_jaccard_reason(jacc_totals, per_class, early_stop_class):
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


def diverged_message(run, epoch, cost, Y, void_labels):
    """The TrainingDiverged message: the likely cause and only the files that exist."""
    if len(void_labels) and np.isin(Y, void_labels).all():
        cause = (f"every pixel of this training batch is void (label {void_labels[0]}), so the "
                 "void-masked loss is 0/0; check the training label maps (a larger batch size "
                 "or a crop that keeps labelled pixels avoids all-void batches)")
    else:
        cause = "try a smaller -learning_rate"
    saved = [name for name in (run.files.best_weights, run.files.last_weights)
             if os.path.exists(run.path(name))]
    where = (f"the weights saved so far are in {', '.join(run.path(n) for n in saved)}"
             if saved else "no weights were saved yet")
    return f"epoch {epoch}: training loss is {cost}; stopping. {cause}; {where}"
