"""The trainer's guarantees, tested once for every recipe (here: the tiny test recipe).

A used ``savepath`` is refused, ``--overwrite`` replaces a run, ``--resume`` continues one
and refuses a state that does not match its files, Ctrl-C never interrupts a save (and the
run resumes after it), a non-finite training loss stops the run, bad data fails before
anything is compiled, stale temporaries are removed, the time budget stops a run before an
epoch that would overrun it, the learning-curve PNG follows every epoch, and data-parallel
training on 2 devices computes what one device does.

Most tests replace the compiled functions by stubs (:class:`StubRecipe`) so that they run in
a second; the end-to-end ones compile the tiny network (about ten seconds).
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne import training
from fcn8_lasagne.cli import main
from fcn8_lasagne.training import (
    RECIPES,
    RunMismatch,
    Trainer,
    TrainingDiverged,
    TrainingFunctions,
)
from fcn8_lasagne.weights import atomic_savez, read_npz_values
from tests.training.tiny_recipe import TinyRecipe, tiny_config

ROOT = Path(__file__).resolve().parents[2]


class StubRecipe(TinyRecipe):
    """The tiny recipe with stub functions: ``train_step(call)`` gives each training loss
    (it may raise), ``val_totals(n_classes)`` the validation Jaccard totals."""

    def __init__(self, name="tiny", train_step=lambda call: 0.3, val_totals=None):
        super().__init__(name)
        self.train_step = train_step
        self.val_totals = val_totals
        self.train_calls = 0
        self.built = 0

    def build_functions(self, config, model, data):
        self.built += 1

        def train_fn(X, y):
            self.train_calls += 1
            return np.float32(self.train_step(self.train_calls - 1))

        def val_fn(X, y):
            totals = (np.array([[1.0] * data.n_classes, [2.0] * data.n_classes])
                      if self.val_totals is None else self.val_totals(data.n_classes))
            return np.float32(0.5), np.float32(0.75), totals

        return TrainingFunctions(train_fn, val_fn, None, [], {})


def _train(config, recipe=None, lines=None):
    log = (lambda line: None) if lines is None else lines.append
    return Trainer(config, recipe or StubRecipe(), log=log, progress=False).train()


def _files(run):
    return {name: (run / name).read_bytes() for name in sorted(os.listdir(run))}


def _state(run):
    with np.load(run / "training_state.npz") as state:
        return list(state["progress"]), state["histories"], state["curves"]


FILES = TinyRecipe.files


# --- the save folder ----------------------------------------------------------------------

def test_a_used_savepath_is_refused_and_overwrite_replaces_the_run(tmp_path):
    _train(tiny_config(tmp_path, num_epochs=1))
    run = tmp_path / "run"
    before = _files(run)
    assert {FILES.best_weights, FILES.last_weights, FILES.state, FILES.curves} <= set(before)
    recipe = StubRecipe()
    with pytest.raises(FileExistsError, match=rf"already holds a training run \("
                                              rf"{FILES.best_weights}.*--resume.*--overwrite"):
        _train(tiny_config(tmp_path, num_epochs=1), recipe)
    assert recipe.built == 0 and _files(run) == before  # nothing ran, nothing changed
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / FILES.log).write_text("EPOCH 0\n")  # one leftover file is enough to refuse
    with pytest.raises(FileExistsError, match=FILES.log):
        _train(tiny_config(tmp_path, savepath=str(lone)))
    lines = []
    _train(tiny_config(tmp_path, num_epochs=1, overwrite=True), lines=lines)
    assert any(line.startswith("--overwrite: removed the previous run's") for line in lines)
    assert (run / FILES.log).read_text().count("EPOCH") == 1
    with pytest.raises(ValueError, match="contradict"):
        _train(tiny_config(tmp_path, resume=True, overwrite=True))


def test_an_empty_savepath_is_fine_and_resume_needs_a_state(tmp_path):
    (tmp_path / "run").mkdir()
    assert _train(tiny_config(tmp_path, num_epochs=1))["test"] is not None
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _train(tiny_config(tmp_path, savepath=str(tmp_path / "other"), resume=True))


def test_stale_temporaries_are_removed_and_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".tmp-abc.npz").write_bytes(b"x" * 1000)
    (run / "notes.txt").write_text("mine")
    lines = []
    _train(tiny_config(tmp_path, num_epochs=1), lines=lines)
    assert not (run / ".tmp-abc.npz").exists() and (run / "notes.txt").read_text() == "mine"
    assert any(line.startswith("removed 1 stale temporary file(s)") and ".tmp-abc.npz" in line
               for line in lines)


# --- resume -------------------------------------------------------------------------------

@pytest.mark.parametrize("changed", [FILES.last_weights, FILES.best_weights,
                                     FILES.last_errors])
def test_resume_refuses_a_state_that_does_not_match_its_files(tmp_path, changed):
    _train(tiny_config(tmp_path, num_epochs=1))
    run = tmp_path / "run"
    values = read_npz_values(run / changed, allow_nonfinite=True)
    atomic_savez(run / changed, *[np.asarray(v) + 1 for v in values])
    recipe = StubRecipe()
    with pytest.raises(RunMismatch, match=rf"training_state.npz does not match {changed}"):
        _train(tiny_config(tmp_path, num_epochs=2, resume=True), recipe)
    assert recipe.train_calls == 0


def test_resume_refuses_a_run_of_another_model(tmp_path):
    class OtherHistories(StubRecipe):
        history_names = ("err_train", "err_valid")

        def history_values(self, train_metrics, scores):
            return (train_metrics[0], scores.loss)

    _train(tiny_config(tmp_path, num_epochs=1))
    with pytest.raises(RunMismatch, match="another --model"):
        _train(tiny_config(tmp_path, num_epochs=2, resume=True), OtherHistories())


# --- Ctrl-C -------------------------------------------------------------------------------

def test_ctrl_c_in_training_saves_last_and_resume_reruns_that_epoch(tmp_path):
    def step(call):
        if call == 3:  # the second step of epoch 1
            raise KeyboardInterrupt
        return 0.3

    lines = []
    result = _train(tiny_config(tmp_path, num_epochs=4), StubRecipe(train_step=step), lines)
    assert result["interrupted"] and result["test"] is None
    assert any(line.startswith("Interrupted in epoch 1") for line in lines)
    run = tmp_path / "run"
    progress, histories, curves = _state(run)
    assert progress == [1, 0] and histories.shape == (4, 1) and curves.shape == (1, 4)
    resumed = []
    _train(tiny_config(tmp_path, num_epochs=2, resume=True), lines=resumed)
    assert "Resuming at epoch 1 (patience 0)" in resumed
    assert [line.split(":")[0] for line in (run / FILES.log).read_text().splitlines()] == \
        ["EPOCH 0", "EPOCH 1"]


def test_ctrl_c_while_saving_waits_for_the_epoch_and_the_run_resumes(tmp_path, monkeypatch):
    real_savez = training.run.atomic_savez
    sent = []

    def savez_then_sigint(path, *args, **kwds):
        real_savez(path, *args, **kwds)
        if os.path.basename(path) == FILES.best_weights and not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right after the best weights

    monkeypatch.setattr(training.run, "atomic_savez", savez_then_sigint)
    lines = []
    result = _train(tiny_config(tmp_path, num_epochs=3), lines=lines)
    assert sent and result["interrupted"]
    run = tmp_path / "run"
    progress, histories, _ = _state(run)
    # the state describes exactly the epochs whose files exist: epoch 0 complete
    assert progress == [1, 0] and histories.shape == (4, 1)
    assert (run / FILES.log).read_text().count("EPOCH") == 1
    monkeypatch.setattr(training.run, "atomic_savez", real_savez)
    resumed = []
    _train(tiny_config(tmp_path, num_epochs=2, resume=True), lines=resumed)
    assert "Resuming at epoch 1 (patience 0)" in resumed
    assert _state(run)[1].shape == (4, 2)


# --- the NaN guard, bad data, NaN validation ------------------------------------------------

def test_a_nan_loss_stops_the_run_and_keeps_the_saved_epochs(tmp_path):
    recipe = StubRecipe(train_step=lambda call: np.nan if call >= 2 else 0.3)
    with pytest.raises(TrainingDiverged, match=rf"epoch 1: training loss is nan.*"
                                               rf"{FILES.best_weights}"):
        _train(tiny_config(tmp_path, num_epochs=3), recipe)
    run = tmp_path / "run"
    assert (run / FILES.best_weights).exists()
    assert (run / FILES.log).read_text().count("EPOCH") == 1
    assert _state(run)[0] == [1, 0]


def test_a_nan_loss_before_any_save_names_no_file(tmp_path):
    with pytest.raises(TrainingDiverged, match="no weights were saved yet"):
        _train(tiny_config(tmp_path), StubRecipe(train_step=lambda call: np.inf))


def test_bad_data_fails_before_compiling(tmp_path):
    from fcn8_lasagne.data import load_dataset
    from fcn8_lasagne.data.base import read_label_map

    config = tiny_config(tmp_path)
    test_set = load_dataset("synthetic", config.data_dir, "test", **config.dataset_options)
    mask = read_label_map(test_set.mask_paths[-1]).astype(np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(test_set.mask_paths[-1])
    recipe = StubRecipe()
    with pytest.raises(ValueError, match=r"label value\(s\) 7"):
        _train(config, recipe)
    assert recipe.built == 0
    assert not (tmp_path / "run").exists()


def test_early_stop_class_outside_the_classes_fails_before_compiling(tmp_path):
    recipe = StubRecipe()
    with pytest.raises(ValueError, match=r"-early_stop_class 2 .* 0\.\.1 \(2 classes\)"):
        _train(tiny_config(tmp_path, early_stop_class=2), recipe)
    assert recipe.built == 0


def test_nan_validation_jaccard_grows_patience_and_the_last_weights_are_tested(tmp_path):
    lines = []
    result = _train(tiny_config(tmp_path, num_epochs=3, max_patience=2),
                    StubRecipe(val_totals=lambda n: np.zeros((2, n))), lines)
    assert result["stop_reason"] == "patience" and result["epochs_run"] == 2
    assert any("every validation pixel is void" in line for line in lines)
    assert result["test"]["weights"] == FILES.last_weights
    assert not (tmp_path / "run" / FILES.best_weights).exists()


# --- early stopping and the time budget -------------------------------------------------------

def test_patience_stops_the_run(tmp_path):
    result = _train(tiny_config(tmp_path, num_epochs=10, max_patience=2))
    # epoch 0 is the best; epochs 1 and 2 do not improve on it
    assert result["stop_reason"] == "patience" and result["epochs_run"] == 3
    assert result["test"]["weights"] == FILES.best_weights


class FakeClock:
    """``time.monotonic`` for the trainer: each training step takes ``step`` seconds."""

    def __init__(self, step):
        self.now = 1000.0
        self.step = step

    def __call__(self):
        return self.now


def test_the_time_budget_stops_before_an_epoch_that_would_overrun(tmp_path):
    clock = FakeClock(5.0)

    def step(call):
        clock.now += clock.step  # two steps per epoch: 10 s an epoch
        return 0.3

    recipe = StubRecipe(train_step=step)
    trainer = Trainer(tiny_config(tmp_path, num_epochs=10, time_budget=35),
                      recipe, log=(lines := []).append, progress=False)
    trainer.clock = clock
    result = trainer.train()
    # after 3 epochs, 30 s have passed: a fourth (10 s) would end at 40 s > 35 s
    assert result["stop_reason"] == "time budget" and result["epochs_run"] == 3
    assert ("Stopping before epoch 3: the time budget of 35 s would be exceeded (30.0 s "
            "elapsed, the last epoch took 10.0 s)") in lines
    assert result["test"] is not None and lines[-1].startswith("FINAL MODEL")
    # without a budget the same run goes on
    clock.now = 1000.0
    trainer = Trainer(tiny_config(tmp_path, savepath=str(tmp_path / "free"), num_epochs=5),
                      StubRecipe(train_step=step), log=lambda line: None, progress=False)
    trainer.clock = clock
    assert trainer.train()["epochs_run"] == 5


def test_the_time_budget_counts_from_the_start_of_train(tmp_path):
    clock = FakeClock(5.0)

    class SlowSetup(StubRecipe):
        def load_data(self, config):
            clock.now += 20.0  # reading the data takes 20 s
            return super().load_data(config)

    def step(call):
        clock.now += clock.step
        return 0.3

    trainer = Trainer(tiny_config(tmp_path, num_epochs=10, time_budget=35),
                      SlowSetup(train_step=step), log=lambda line: None, progress=False)
    trainer.clock = clock
    # 20 s set-up + 10 s epoch 0 = 30 s; epoch 1 would end at 40 s
    assert trainer.train()["epochs_run"] == 1


@pytest.mark.parametrize("budget", [0, -5, float("nan"), float("inf"), "10", True])
def test_a_bad_time_budget_is_refused(tmp_path, budget):
    with pytest.raises(ValueError, match=r"--time-budget must be a finite number of "
                                         rf"seconds > 0, got {budget!r}"):
        _train(tiny_config(tmp_path, time_budget=budget))


# --- learning curves ----------------------------------------------------------------------

def test_the_learning_curves_are_written_after_each_epoch_and_kept_on_resume(tmp_path,
                                                                              monkeypatch):
    written = []
    real_write = training.trainer.write_learning_curves

    def spy(path, rows, n_classes, **kwargs):
        real_write(path, rows, n_classes, **kwargs)
        written.append((Path(path).read_bytes(), [list(row) for row in rows]))

    monkeypatch.setattr(training.trainer, "write_learning_curves", spy)
    _train(tiny_config(tmp_path, num_epochs=2))
    png = tmp_path / "run" / FILES.curves
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert len(written) == 2 and written[0][0] != written[1][0]  # rewritten each epoch
    # one row per epoch: training loss, validation loss, Jaccard per class (1/2 each here)
    np.testing.assert_allclose(written[1][1], [[0.3, 0.5, 0.5, 0.5]] * 2, rtol=1e-6)
    _train(tiny_config(tmp_path, num_epochs=3, resume=True))
    assert len(written) == 3 and len(written[2][1]) == 3
    assert _state(tmp_path / "run")[2].shape == (3, 4)


def test_the_learning_curves_follow_the_numbers():
    """The figure of one run differs from that of another: the rows are drawn."""
    from fcn8_lasagne.training import render_learning_curves

    rows = [[1.0, 0.9, 0.1, 0.2], [0.5, 0.6, 0.4, 0.5]]
    first = render_learning_curves(rows, 2, title="tiny")
    assert first == render_learning_curves(rows, 2, title="tiny")
    assert first != render_learning_curves([rows[0], [0.5, 0.6, 0.9, 0.5]], 2, title="tiny")
    # a row without per-class values (a state of an older version) is drawn as well
    assert render_learning_curves([[1.0, 0.9], rows[1]], 2)[:8] == b"\x89PNG\r\n\x1a\n"


# --- end to end, compiled -------------------------------------------------------------------

@pytest.fixture
def tiny_registered(monkeypatch):
    monkeypatch.setitem(RECIPES, "tiny", "tests.training.tiny_recipe:TinyRecipe")


def test_the_cli_takes_the_recipes_flags_and_trains_it(tmp_path, tiny_registered, capsys):
    run = tmp_path / "run"
    command = ["train", "--model", "tiny", "--width", "3", "--data-dir", str(tmp_path / "d"),
               "--synthetic-images", "4", "2", "2", "--synthetic-size", "28", "28", "-ne", "2",
               "--savepath", str(run), "--no-progress"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert out.count("EPOCH") == 2 and "FINAL MODEL" in out
    config = (run / "config.txt").read_text()
    assert "options: {'width': 3}" in config and "learning_rate: 0.01" in config  # defaults
    weights = read_npz_values(run / FILES.best_weights)
    assert weights[0].shape == (3, 3, 3, 3)  # --width 3 filters
    assert main(command) == 2  # a used savepath
    assert "already holds a training run" in capsys.readouterr().err
    assert main(command[:-2] + [str(tmp_path / "b"), "--time-budget", "-1",
                                "--no-progress"]) == 2
    assert ("fcn8 train: error: --time-budget must be a finite number of seconds > 0, got "
            "-1.0") in capsys.readouterr().err
    assert main(command[:-2] + [str(tmp_path / "c"), "--time-budget", "0", "-ne", "1",
                                "--no-progress"]) == 0  # 0: no budget
    assert "time_budget: None" in (tmp_path / "c" / "config.txt").read_text()
    with pytest.raises(SystemExit):  # not an FCN-8 flag
        main(["train", "--model", "fcn8", "--width", "3"])
    assert "unrecognized arguments: --width 3" in capsys.readouterr().err


def test_an_unknown_or_missing_recipe_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(RECIPES, "ghost", "fcn8_lasagne.training.ghost:GhostRecipe")
    assert main(["train", "--model", "ghost"]) == 2
    assert capsys.readouterr().err == (
        "fcn8 train: error: model 'ghost': its recipe module fcn8_lasagne.training.ghost "
        "does not exist in this installation\n")
    with pytest.raises(SystemExit):
        main(["train", "--model", "bogus"])
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model 'bogus'"):
        training.get_recipe("bogus")


@pytest.mark.slow
def test_a_compiled_run_learns_and_resumes_where_it_stopped(tmp_path):
    lines = []
    result = _train(tiny_config(tmp_path, num_epochs=3), TinyRecipe("tiny"), lines)
    epochs = [line for line in lines if line.startswith("EPOCH")]
    losses = [float(line.split("training loss ")[1].split(",")[0]) for line in epochs]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert result["test"] is not None
    # two epochs, then one more on resume: the same epochs as three in one go
    _train(tiny_config(tmp_path, savepath=str(tmp_path / "split"), num_epochs=2),
           TinyRecipe("tiny"))
    resumed = []
    _train(tiny_config(tmp_path, savepath=str(tmp_path / "split"), num_epochs=3, resume=True),
           TinyRecipe("tiny"), resumed)
    strip = [line.rsplit(" took ", 1)[0] for line in epochs]
    log = (tmp_path / "split" / FILES.log).read_text().splitlines()
    np.testing.assert_allclose(
        [float(line.split("training loss ")[1].split(",")[0]) for line in log], losses,
        rtol=1e-5)
    assert [line.rsplit(" took ", 1)[0][:8] for line in log] == [s[:8] for s in strip]


_DEVICE_RUN = """
import sys
from fcn8_lasagne.training import RECIPES, train
from tests.training.tiny_recipe import tiny_config
from pathlib import Path
RECIPES["tiny"] = "tests.training.tiny_recipe:TinyRecipe"
devices = None if sys.argv[2] == "0" else int(sys.argv[2])
train(tiny_config(Path(sys.argv[1]), num_epochs=1, batch_size=(4, 2, 2), device="jax",
                  devices=devices), log=print, progress=False)
"""


@pytest.mark.slow
def test_two_devices_train_as_one(tmp_path):
    pytest.importorskip("jax")
    outputs = []
    for devices in (0, 2):
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_force_host_platform_device_count=2",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")])))
        folder = tmp_path / f"d{devices}"
        folder.mkdir()
        done = subprocess.run([sys.executable, "-c", _DEVICE_RUN, str(folder), str(devices)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(folder / "run")
    one, two = (read_npz_values(run / FILES.last_weights) for run in outputs)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


_PROCESS_RUN = """
import json, sys
from pathlib import Path
from fcn8_lasagne.compile import initialize_distributed
from fcn8_lasagne.training import Trainer
from tests.training.tiny_recipe import TinyRecipe, tiny_config

folder, port, rank, hurried = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
initialize_distributed(f"127.0.0.1:{port}", 2, rank)
trainer = Trainer(tiny_config(Path(folder), num_epochs=3, batch_size=(4, 2, 2), device="jax",
                              devices="all", time_budget=1000.0),
                  TinyRecipe("tiny"), log=lambda line: None, progress=False)
if rank == hurried:  # this process's clock runs 600 s ahead at every reading
    readings = iter(range(0, 10 ** 6, 600))
    trainer.clock = lambda: float(next(readings))
print(json.dumps({"rank": rank, "epochs_run": trainer.train()["epochs_run"]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("hurried, epochs", [(1, 3), (0, 1)])
def test_the_processes_of_a_run_agree_on_the_time_budget(tmp_path, hurried, epochs):
    """Process 0's clock decides: a process whose own clock says stop goes on with the
    others (a process leaving early would leave them waiting forever), and all stop
    when process 0's does."""
    pytest.importorskip("jax")
    import json
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    env.pop("XLA_FLAGS", None)
    runs = [subprocess.Popen([sys.executable, "-c", _PROCESS_RUN, str(tmp_path), str(port),
                              str(rank), str(hurried)], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for rank in range(2)]
    results = []
    for run in runs:
        try:
            out, err = run.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for other in runs:
                other.kill()
            raise
        assert run.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [result["epochs_run"] for result in results] == [epochs, epochs]
