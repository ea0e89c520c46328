"""train_fcn8.py's functions against NumPy references, and the training loop's files."""

import os

import numpy as np
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import get_all_param_values, set_all_param_values
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.training import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    LOG_FILE,
    TrainingConfig,
    TrainingDiverged,
    build_functions,
    epoch_line,
    final_line,
    train,
)
from fcn8_lasagne import training
from fcn8_lasagne.weights import read_npz_values
from tests import reference

# Full-size networks: one such module at a time (pytest.ini: --dist loadgroup), so that
# two of them never share the machine's 24 GB.
pytestmark = pytest.mark.xdist_group("large_memory")


@pytest.fixture(scope="module")
def tutorial_functions():
    """FCN-8 with 2 classes + void 2, dropout off so NumPy can follow it exactly."""
    np.random.seed(11)
    input_var = pt.tensor4("input_var")
    target_var = pt.ivector("target_var")
    net = buildFCN8(3, input_var, n_classes=2, trainable=True, dropout=0.0)
    rng = np.random.default_rng(12)
    # zero biases, as the tutorial initialises them: exact max-pool ties in the padded border
    values = reference.scaled_random_params(
        [v.shape for v in get_all_param_values(net["probs"])], rng, bias_scale=0.0)
    set_all_param_values(net["probs"], values)
    functions = build_functions(net["probs"], input_var, target_var, 2, [2],
                                learning_rate=1e-4)
    x = rng.uniform(0, 1, (2, 3, 27, 30)).astype("float32")
    labels = rng.integers(0, 3, size=2 * 27 * 30).astype("int32")
    return net, functions, values, x, labels


def test_loss_accuracy_jaccard_match_numpy(tutorial_functions):
    net, functions, values, x, labels = tutorial_functions
    loss, accuracy, jaccard = functions.val_fn(x, labels)
    probs = reference.fcn_forward(x, values)["probs"]
    mask = labels != 2
    picked = np.clip(probs[np.arange(len(labels)), np.where(mask, labels, 0)], 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(loss, -np.log(picked)[mask].mean(), rtol=1e-4)
    predicted = probs.argmax(axis=1)
    np.testing.assert_allclose(accuracy, (predicted == labels)[mask].mean(), rtol=1e-5)
    for k in range(2):
        tp = np.sum((predicted == k) & (labels == k))
        fp = np.sum((predicted == k) & (labels != k) & mask)
        fn = np.sum((predicted != k) & (labels == k))
        np.testing.assert_array_equal(jaccard[:, k], [tp, tp + fp + fn])


def test_gradients_and_adam_step_match_numpy(tutorial_functions):
    net, functions, values, x, labels = tutorial_functions
    expected_loss, expected_grads = reference.fcn8_loss_and_grads(x, values, labels, 2)
    import pytensor

    from fcn8_lasagne.compile import function
    from fcn8_lasagne.layers import get_output
    from fcn8_lasagne.metrics import crossentropy_metric

    input_var = net["input"].input_var
    target_var = pt.ivector("target")
    loss = crossentropy_metric(get_output(net["probs"]), target_var, [2])
    grads = pytensor.grad(loss, functions.params)
    got_loss, *got_grads = function([input_var, target_var], [loss] + grads)(x, labels)
    np.testing.assert_allclose(got_loss, expected_loss, rtol=1e-4)
    assert len(got_grads) == 42
    for index, (got, want) in enumerate(zip(got_grads, expected_grads)):
        scale = np.abs(want).max()
        assert np.abs(got - want).max() <= 2e-4 * scale + 1e-9, f"gradient {index}"
    # one Adam step, Lasagne's formula: a_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps outside
    train_loss = functions.train_fn(x, labels)
    np.testing.assert_allclose(train_loss, expected_loss, rtol=1e-4)
    a_t = 1e-4 * np.sqrt(1 - 0.999) / (1 - 0.9)
    for index, (param, before, grad) in enumerate(zip(functions.params, values,
                                                      expected_grads)):
        m, v = 0.1 * grad, 0.001 * grad ** 2
        want = before - a_t * m / (np.sqrt(v) + 1e-8)
        np.testing.assert_allclose(param.get_value(), want, rtol=1e-4, atol=1e-6,
                                   err_msg=f"parameter {index} after one Adam step")
    set_all_param_values(net["probs"], values)


def test_epoch_and_final_lines_match_the_tutorial_format():
    line = epoch_line(3, 0.5, 0.25, 0.9, [0.8, 0.4], 0.6, 12.5)
    assert line == ("EPOCH 3: Avg epoch training cost train 0.500000, cost val 0.250000, "
                    "acc val 0.900000, jacc val class 0 0.800000, jacc val class 1 0.400000, "
                    "jacc val 0.600000 took 12.500000 s")
    assert final_line(0.1, 0.9, [0.8, 0.4], 0.6) == (
        "FINAL MODEL: err test 0.100000, acc test 0.900000, jacc test class 0 0.800000, "
        "jacc test class 1 0.400000, jacc test 0.600000")


def _tiny_synthetic_config(tmp_path, **overrides):
    options = dict(n_train=4, n_valid=2, n_test=2, image_size=(28, 28))
    settings = dict(dataset="synthetic", data_dir=str(tmp_path / "data"), num_epochs=2, batch_size=(2, 1, 1),
                    data_augmentation={"horizontal_flip": True}, savepath=str(tmp_path / "run"),
                    seed=5, model="fcn32", dataset_options=options)
    settings.update(overrides)
    return TrainingConfig(**settings)


@pytest.mark.slow
def test_training_run_writes_the_tutorial_files_and_is_repeatable(tmp_path):
    lines = []
    result = train(_tiny_synthetic_config(tmp_path), log=lines.append, progress=False)
    run = tmp_path / "run"
    for name in (LOG_FILE, "config.txt", BEST_WEIGHTS, LAST_WEIGHTS, "fcn8_errors_best.npz",
                 "fcn8_errors_last.npz"):
        assert (run / name).exists(), name
    epochs = [line for line in lines if line.startswith("EPOCH")]
    assert len(epochs) == 2 and lines[-1].startswith("FINAL MODEL: err test")
    assert (run / LOG_FILE).read_text().splitlines() == epochs
    assert result["test"] is not None and result["epochs_run"] == 2
    with np.load(run / "fcn8_errors_last.npz") as errors:
        assert [errors[f"arr_{i}"].shape for i in range(4)] == [(2,)] * 4
    assert len(read_npz_values(run / LAST_WEIGHTS)) == 34
    # same seed, same losses
    again = []
    train(_tiny_synthetic_config(tmp_path / "again"), log=again.append, progress=False)
    strip = [line.rsplit(" took ", 1)[0] for line in epochs]
    assert [line.rsplit(" took ", 1)[0] for line in again if line.startswith("EPOCH")] == strip


@pytest.mark.slow
def test_resume_continues_from_last_epoch(tmp_path):
    lines = []
    train(_tiny_synthetic_config(tmp_path, num_epochs=1), log=lines.append, progress=False)
    resumed = []
    train(_tiny_synthetic_config(tmp_path, num_epochs=2, resume=True), log=resumed.append,
          progress=False)
    assert any("Resuming at epoch 1" in line for line in resumed)
    assert [l for l in resumed if l.startswith("EPOCH")][0].startswith("EPOCH 1:")
    log = (tmp_path / "run" / LOG_FILE).read_text().splitlines()
    assert [l.split(":")[0] for l in log] == ["EPOCH 0", "EPOCH 1"]


def test_resume_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(_tiny_synthetic_config(tmp_path, resume=True), log=lambda _: None,
              progress=False)
    assert not os.path.exists(tmp_path / "run" / BEST_WEIGHTS)


def _stub_functions(monkeypatch, train_step, val_totals=None):
    """Replace the compiled functions by stubs (no compilation): train_step(call_index).

    ``val_totals(n_classes)`` gives val_fn's Jaccard totals (default: 1 / 1 per class).
    """
    from fcn8_lasagne import training

    calls = []

    def fake_build(top_layer, input_var, target_var, n_classes, void_labels, *args, **kwargs):
        def train_fn(X, y):
            calls.append(len(calls))
            return train_step(len(calls) - 1)

        def val_fn(X, y):
            totals = (np.ones((2, n_classes), "float32") if val_totals is None
                      else val_totals(n_classes))
            return np.float32(0.5), np.float32(0.75), totals

        return training.TrainingFunctions(train_fn, val_fn, None, [], {})

    monkeypatch.setattr(training, "build_functions", fake_build)
    return calls


def test_nan_loss_stops_with_a_clear_message_and_keeps_best(tmp_path, monkeypatch):
    # epoch 0 trains normally and saves `best`; the first step of epoch 1 returns NaN
    _stub_functions(monkeypatch, lambda call: np.float32("nan") if call >= 2 else 0.3)
    config = _tiny_synthetic_config(tmp_path, num_epochs=3)
    # `fcn8 train` reports TrainingDiverged as a message; any other exception is a traceback
    with pytest.raises(TrainingDiverged,
                       match=r"epoch 1: training loss is nan.*new_fcn8_model_best"):
        train(config, log=lambda _: None, progress=False)
    best = tmp_path / "run" / BEST_WEIGHTS
    assert best.exists()
    assert (tmp_path / "run" / LOG_FILE).read_text().count("EPOCH") == 1


def test_ctrl_c_saves_last_and_returns_cleanly(tmp_path, monkeypatch):
    def step(call):
        if call == 3:
            raise KeyboardInterrupt
        return 0.3

    _stub_functions(monkeypatch, step)
    lines = []
    result = train(_tiny_synthetic_config(tmp_path, num_epochs=5), log=lines.append,
                   progress=False)
    assert result["interrupted"] and result["test"] is None
    assert any("Interrupted in epoch 1" in line for line in lines)
    run = tmp_path / "run"
    assert (run / LAST_WEIGHTS).exists() and (run / "training_state.npz").exists()
    with np.load(run / "training_state.npz") as state:
        assert list(state["progress"]) == [1, 0]  # resume reruns epoch 1


def _run_files(run):
    return {name: (run / name).read_bytes() for name in os.listdir(run)}


def test_new_run_refuses_a_savepath_holding_a_run(tmp_path, monkeypatch):
    calls = _stub_functions(monkeypatch, lambda call: 0.3)
    train(_tiny_synthetic_config(tmp_path, num_epochs=1), log=lambda _: None, progress=False)
    run = tmp_path / "run"
    before = _run_files(run)
    assert {BEST_WEIGHTS, LAST_WEIGHTS, training.STATE_FILE} <= set(before)
    n_calls = len(calls)
    with pytest.raises(FileExistsError,
                       match=r"already holds a training run \(new_fcn8_model_best.npz.*"
                             r"training_state.npz.*--resume.*--overwrite.*--savepath"):
        train(_tiny_synthetic_config(tmp_path, num_epochs=1), log=lambda _: None,
              progress=False)
    assert len(calls) == n_calls and _run_files(run) == before  # nothing ran, nothing changed
    # a single leftover file (here the log) is enough to refuse
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / LOG_FILE).write_text("EPOCH 0: ...\n")
    with pytest.raises(FileExistsError, match="fcn8_output.log"):
        train(_tiny_synthetic_config(tmp_path, savepath=str(lone)), log=lambda _: None,
              progress=False)
    # --overwrite replaces the run: one run in the log, not two
    train(_tiny_synthetic_config(tmp_path, num_epochs=1, overwrite=True), log=lambda _: None,
          progress=False)
    assert (run / LOG_FILE).read_text().count("EPOCH") == 1
    with pytest.raises(ValueError, match="contradict"):
        train(_tiny_synthetic_config(tmp_path, resume=True, overwrite=True),
              log=lambda _: None, progress=False)


def test_an_empty_savepath_is_fine(tmp_path, monkeypatch):
    _stub_functions(monkeypatch, lambda call: 0.3)
    (tmp_path / "run").mkdir()
    result = train(_tiny_synthetic_config(tmp_path, num_epochs=1), log=lambda _: None,
                   progress=False)
    assert result["test"] is not None


def _state(run):
    with np.load(run / training.STATE_FILE) as state:
        return list(state["progress"]), state["histories"]


def test_ctrl_c_while_saving_an_epoch_leaves_a_consistent_run(tmp_path, monkeypatch):
    import signal

    _stub_functions(monkeypatch, lambda call: 0.3)
    real_savez = training.run.atomic_savez
    sent = []

    def savez_then_sigint(path, *args, **kwds):
        real_savez(path, *args, **kwds)
        if os.path.basename(path) == BEST_WEIGHTS and not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right after the best weights

    from fcn8_lasagne.weights import npz

    monkeypatch.setattr(training.run, "atomic_savez", savez_then_sigint)
    monkeypatch.setattr(npz, "atomic_savez", savez_then_sigint)
    lines = []
    result = train(_tiny_synthetic_config(tmp_path, num_epochs=3), log=lines.append,
                   progress=False)
    assert sent and result["interrupted"]
    run = tmp_path / "run"
    progress, histories = _state(run)
    # the state describes exactly the epochs whose files exist: epoch 0 complete
    assert progress == [1, 0] and histories.shape == (4, 1)
    monkeypatch.setattr(training.run, "atomic_savez", real_savez)
    monkeypatch.setattr(npz, "atomic_savez", real_savez)
    resumed = []
    train(_tiny_synthetic_config(tmp_path, num_epochs=2, resume=True), log=resumed.append,
          progress=False)
    assert any("Resuming at epoch 1" in line for line in resumed)
    assert [l.split(":")[0] for l in (run / LOG_FILE).read_text().splitlines()] == \
        ["EPOCH 0", "EPOCH 1"]
    assert _state(run)[1].shape == (4, 2)


@pytest.mark.parametrize("changed", [LAST_WEIGHTS, BEST_WEIGHTS])
def test_resume_refuses_a_state_that_does_not_match_the_weights(tmp_path, monkeypatch,
                                                                 changed):
    from fcn8_lasagne.weights import atomic_savez

    _stub_functions(monkeypatch, lambda call: 0.3)
    train(_tiny_synthetic_config(tmp_path, num_epochs=1), log=lambda _: None, progress=False)
    run = tmp_path / "run"
    # as if a later epoch had written this file and stopped before the state
    values = read_npz_values(run / changed)
    atomic_savez(run / changed, *[v + 1 for v in values])
    with pytest.raises(RuntimeError, match=rf"training_state.npz.*{changed}"):
        train(_tiny_synthetic_config(tmp_path, num_epochs=2, resume=True),
              log=lambda _: None, progress=False)
    assert len(read_npz_values(run / changed)) == len(values)  # the Lasagne format is kept
    with np.load(run / changed) as archive:
        assert sorted(archive.files) == sorted(f"arr_{i}" for i in range(len(values)))


def test_nan_validation_jaccard_is_explained_and_the_last_weights_are_tested(tmp_path,
                                                                             monkeypatch):
    # validation labels all void: no class can be scored, the Jaccard is 0/0 every epoch
    _stub_functions(monkeypatch, lambda call: 0.3,
                    val_totals=lambda n: np.zeros((2, n), "float32"))
    lines = []
    result = train(_tiny_synthetic_config(tmp_path, num_epochs=2), log=lines.append,
                   progress=False)
    warnings = [line for line in lines if line.startswith("warning")]
    assert any("NaN" in line and "void" in line for line in warnings), lines
    assert any("testing the last weights" in line for line in warnings), lines
    assert lines[-1].startswith("FINAL MODEL")
    assert result["test"] is not None and result["test"]["weights"] == LAST_WEIGHTS
    assert not (tmp_path / "run" / BEST_WEIGHTS).exists()


def test_nan_jaccard_names_the_absent_class():
    totals = np.array([[3.0, 0.0], [5.0, 0.0]])
    reason = training._nan_jaccard_reason(totals, [0.6, np.nan], None)
    assert "NaN" in reason and "[1]" in reason


def test_nan_loss_before_any_save_names_no_missing_file(tmp_path, monkeypatch):
    _stub_functions(monkeypatch, lambda call: np.float32("nan"))
    with pytest.raises(TrainingDiverged, match="no weights were saved yet") as error:
        train(_tiny_synthetic_config(tmp_path), log=lambda _: None, progress=False)
    assert BEST_WEIGHTS not in str(error.value)


def test_nan_loss_on_an_all_void_batch_says_so():
    run = training.RunFolder("/nonexistent", training.FCN8_FILES, ())
    message = training._diverged_message(run, 0, float("nan"), np.full((1, 4, 4), 2), [2])
    assert "void" in message and "learning_rate" not in message
    assert "no weights were saved yet" in message


def test_bad_label_in_the_test_split_fails_before_compiling(tmp_path, monkeypatch):
    from fcn8_lasagne.data import load_dataset
    from fcn8_lasagne.data.base import read_label_map
    from PIL import Image

    calls = _stub_functions(monkeypatch, lambda call: 0.3)
    built = []
    real_build = training.build_functions
    monkeypatch.setattr(training, "build_functions",
                        lambda *a, **k: built.append(1) or real_build(*a, **k))
    config = _tiny_synthetic_config(tmp_path)
    test_set = load_dataset("synthetic", config.data_dir, "test", **config.dataset_options)
    mask_path = test_set.mask_paths[-1]
    mask = read_label_map(mask_path).astype(np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(mask_path)
    with pytest.raises(ValueError, match=r"label value\(s\) 7"):
        train(config, log=lambda _: None, progress=False)
    assert not built and not calls
    assert not (tmp_path / "run").exists() or not os.listdir(tmp_path / "run")
