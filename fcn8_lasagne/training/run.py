"""The save folder of a training run: its files, their fingerprints and the resume state.

A run's files are named by its recipe (:class:`RunFiles`). One epoch's files are committed as
a group under deferred Ctrl-C (:func:`sigint_deferred`), ``training_state.npz`` last, with a
fingerprint of each weights / errors file it relies on, so that ``--resume`` refuses a state
that does not describe the files next to it (:class:`RunMismatch`). A new run refuses a
``savepath`` that already holds one unless ``overwrite``; stale temporaries of a save that
was killed are removed when a run starts.
"""

import hashlib
import json
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from ..files import atomic_write, remove_stale_temporaries
from ..layers import set_all_param_values
from ..updates import get_update_state_values, set_update_state_values
from ..weights import atomic_savez, read_npz_values

__all__ = ["RunFiles", "RunFolder", "RunMismatch", "sigint_deferred", "fingerprint",
           "write_config", "LEGACY_HISTORY_NAMES"]

#: The order of the error histories in a ``training_state.npz`` that records no
#: ``history_names`` (written by FCN-8 runs before recipes existed).
LEGACY_HISTORY_NAMES = ("err_train", "err_valid", "acc_valid", "jacc_valid")


class RunMismatch(RuntimeError):
    """``training_state.npz`` does not describe the weight / error files next to it."""


@dataclass(frozen=True)
class RunFiles:
    """The names of a run's files in ``savepath`` (a recipe gives its own).

    Attributes
    ----------
    best_weights, last_weights : str
        Lasagne ``.npz`` weights of the best-scoring and of the last epoch.
    best_errors, last_errors : str
        The error histories (``arr_i``: one per history name) saved with them.
    log : str
        One line per epoch, appended after the epoch's files are committed.
    state : str
        The resume state (optimiser state, progress, histories, fingerprints), written last.
    results : str
        The final test's scores (JSON).
    config : str
        The settings of the run, one ``key: value`` per line.
    curves : str
        The learning-curve PNG.
    """

    best_weights: str
    last_weights: str
    best_errors: str
    last_errors: str
    log: str
    state: str = "training_state.npz"
    results: str = "final_results.json"
    config: str = "config.txt"
    curves: str = "learning_curves.png"

    def run_files(self):
        """The files that make up a run (a new run refuses to start over any of them)."""
        return (self.best_weights, self.last_weights, self.state, self.best_errors,
                self.last_errors, self.log, self.results, self.curves)


def fingerprint(arrays):
    """A cheap fingerprint of a list of arrays: shapes, dtypes and a strided sample."""
    digest = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str};".encode())
        flat = array.reshape(-1)
        digest.update(np.ascontiguousarray(flat[::max(1, flat.size // 4096)]).tobytes())
    return digest.hexdigest()


@contextmanager
def sigint_deferred():
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


def write_config(config, path, extra):
    """Write ``config.txt``: every setting, then ``extra``, one ``key: value`` per line."""
    lines = [f"{key}: {value}" for key, value in asdict(config).items()]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    atomic_write(path, lambda stream: stream.write(("\n".join(lines) + "\n").encode()))


class RunFolder:
    """The state of one training run: histories, patience, best score, files.

    The in-memory histories, best score and patience are only changed after the files they
    describe are written (:meth:`Trainer.commit_epoch`), and the state file is written last
    with a fingerprint of each weights / errors file it relies on, so that :meth:`restore`
    can refuse a state that does not match them.

    Parameters
    ----------
    savepath : str
    files : RunFiles
    history_names : sequence of str
        The error histories, in the order of the errors files' arrays.
    writer : bool
        False in a process other than 0 of a multi-process run: it writes nothing and keeps
        the weights it would have saved in memory (to test the best ones at the end).
    """

    def __init__(self, savepath, files, history_names, writer=True):
        self.savepath = savepath
        self.files = files
        self.history_names = tuple(history_names)
        self.writer = writer
        self.memory = {}
        self.histories = {name: [] for name in self.history_names}
        #: one row per epoch: training loss, validation loss, validation Jaccard per class
        self.curves = []
        self.patience = 0
        self.best_score = -np.inf
        self.next_epoch = 0
        self.fingerprints = {}

    def path(self, name):
        return os.path.join(self.savepath, name)

    def existing_files(self):
        """The files of a run already in ``savepath`` (empty if none)."""
        return [name for name in self.files.run_files() if os.path.exists(self.path(name))]

    def check_start(self, resume, overwrite):
        """Refuse a contradictory or impossible start; return the files a new run replaces.

        Raises
        ------
        ValueError
            ``resume`` and ``overwrite`` together.
        FileNotFoundError
            ``resume`` without a state or last weights.
        FileExistsError
            A new run (neither flag) in a ``savepath`` holding a run's files.
        """
        savepath, files = self.savepath, self.files
        if resume and overwrite:
            raise ValueError("--resume and --overwrite contradict each other: --resume "
                             f"continues the run in {savepath}, --overwrite replaces it")
        if resume and not os.path.exists(self.path(files.state)):
            raise FileNotFoundError(
                f"--resume: no {files.state} in {savepath}; nothing to resume")
        if resume and not os.path.exists(self.path(files.last_weights)):
            raise FileNotFoundError(
                f"--resume: {savepath} has {files.state} but no {files.last_weights}; "
                "nothing to resume from")
        existing = self.existing_files()
        if existing and not resume and not overwrite:
            raise FileExistsError(
                f"{savepath} already holds a training run ({', '.join(existing)}); use "
                "--resume to continue it, --overwrite to replace it, or another --savepath")
        return [] if resume else existing

    def remove_stale_temporaries(self):
        """Remove the temporaries of an interrupted save; return a line saying so, or None."""
        if not (self.writer and os.path.isdir(self.savepath)):
            return None
        stale = remove_stale_temporaries(self.savepath)
        if not stale:
            return None
        return (f"removed {len(stale)} stale temporary file(s) of an interrupted save in "
                f"{self.savepath} ({sum(size for _, size in stale) / 1e6:.1f} MB): "
                + ", ".join(os.path.basename(path) for path, _ in stale))

    def history_rows(self):
        return [self.histories[name] for name in self.history_names]

    def write(self, name, arrays):
        """Write ``arrays`` as ``arr_i`` atomically; return the file's fingerprint."""
        if self.writer:
            atomic_savez(self.path(name), *arrays)
        elif name in (self.files.best_weights, self.files.last_weights):
            self.memory[name] = list(arrays)
        return fingerprint(arrays)

    def has(self, name):
        """Whether the run holds ``name`` (on disk, or in memory for a non-writer)."""
        return os.path.exists(self.path(name)) if self.writer else name in self.memory

    def read_weights(self, name):
        return read_npz_values(self.path(name)) if self.writer else self.memory[name]

    def append_log(self, line):
        if self.writer:
            with open(self.path(self.files.log), "a") as stream:
                stream.write(line + "\n")

    def save_state(self, functions):
        """Write the state file (optimiser state, progress, histories, fingerprints)."""
        if not self.writer:
            return
        state = get_update_state_values(functions.updates, functions.params)
        atomic_savez(self.path(self.files.state), *state,
                     progress=np.array([self.next_epoch, self.patience]),
                     best_jacc_val=np.array(self.best_score),
                     histories=np.array(self.history_rows(), dtype=np.float64),
                     history_names=np.array(json.dumps(self.history_names)),
                     curves=_padded(self.curves),
                     fingerprints=np.array(json.dumps(self.fingerprints, sort_keys=True)))

    def restore(self, functions, top_layer, log=print):
        """Load the state and the last weights into ``top_layer`` and the optimiser.

        Raises
        ------
        RunMismatch
            If a recorded fingerprint does not match its file, or the state holds other
            histories than this recipe's.
        """
        files = self.files
        with np.load(self.path(files.state), allow_pickle=False) as archive:
            n_state = sum(1 for name in archive.files if name.startswith("arr_"))
            state = [archive[f"arr_{i}"] for i in range(n_state)]
            progress = [int(v) for v in archive["progress"]]
            best_score = float(archive["best_jacc_val"])
            histories = archive["histories"]
            names = (tuple(json.loads(str(archive["history_names"])))
                     if "history_names" in archive.files else LEGACY_HISTORY_NAMES)
            curves = archive["curves"] if "curves" in archive.files else None
            fingerprints = (json.loads(str(archive["fingerprints"]))
                            if "fingerprints" in archive.files else None)
        if sorted(names) != sorted(self.history_names):
            raise RunMismatch(
                f"--resume: {self.path(files.state)} records the histories "
                f"{', '.join(names)}, this model keeps {', '.join(self.history_names)}: the "
                "run was made with another --model. Resume it with that model, or start "
                "again with --overwrite or another --savepath")
        last_values = read_npz_values(self.path(files.last_weights))
        if fingerprints is None:
            log(f"warning: {self.path(files.state)} was written by an older version and "
                "records no fingerprints; its weight files cannot be checked")
        else:
            self._check_fingerprints(fingerprints, last_values)
        self.next_epoch, self.patience = progress
        self.best_score = best_score
        rows = [list(row) for row in histories] if histories.size else [[] for _ in names]
        by_name = dict(zip(names, rows))
        self.histories = {name: by_name[name] for name in self.history_names}
        n_epochs = len(rows[0])
        if curves is not None and len(curves) == n_epochs:
            self.curves = [list(row) for row in curves]
        else:  # an older state: the losses are known, the per-class Jaccard is not
            self.curves = [[train, valid] for train, valid in
                           zip(by_name.get("err_train", [np.nan] * n_epochs),
                               by_name.get("err_valid", [np.nan] * n_epochs))]
        self.fingerprints = fingerprints or {}
        if not self.writer:  # keeps in step with process 0, which reads them at the end
            self.memory[files.last_weights] = last_values
            if os.path.exists(self.path(files.best_weights)):
                self.memory[files.best_weights] = read_npz_values(
                    self.path(files.best_weights))
        set_all_param_values(top_layer, last_values)
        set_update_state_values(functions.updates, functions.params, state)

    def _check_fingerprints(self, fingerprints, last_values):
        weights = (self.files.best_weights, self.files.last_weights)
        mismatched = []
        for name, expected in sorted(fingerprints.items()):
            path = self.path(name)
            if not os.path.exists(path):
                mismatched.append(f"{name} (missing)")
                continue
            # error histories hold NaN for classes absent from a split
            values = (last_values if name == self.files.last_weights
                      else read_npz_values(path, allow_nonfinite=name not in weights))
            if fingerprint(values) != expected:
                mismatched.append(name)
        if mismatched:
            raise RunMismatch(
                f"--resume: {self.path(self.files.state)} does not match "
                f"{', '.join(mismatched)} in {self.savepath} (the run was probably stopped "
                "while saving an epoch); refusing to resume from an inconsistent run. "
                "Start again with --overwrite or another --savepath")


def _padded(rows):
    """``rows`` as one float64 array, short rows padded with NaN."""
    width = max((len(row) for row in rows), default=0)
    return np.array([list(row) + [np.nan] * (width - len(row)) for row in rows],
                    dtype=np.float64).reshape(len(rows), width)
