"""Bad settings are refused at start-up with a message naming the flag, the value and the rule.

Each check must fire before the network is built or compiled: the tests replace the model
builders with one that raises, so a check that is missing fails fast instead of training.
"""

import numpy as np
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import training
from fcn8_lasagne.cli import main
from fcn8_lasagne.data import Augmentation
from fcn8_lasagne.layers import DropoutLayer, InputLayer
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.models.summary import MIN_INPUT_SIZE, layer_table
from fcn8_lasagne.training import TrainingConfig, train


class ReachedTheModel(Exception):
    """Raised by the stub builders: the settings got past every start-up check."""


@pytest.fixture
def no_model(monkeypatch):
    def builder(*args, **kwargs):
        raise ReachedTheModel

    monkeypatch.setattr(training.fcn8, "BUILDERS", {name: builder
                                               for name in ("fcn8", "fcn16", "fcn32")})


def _config(tmp_path, **overrides):
    options = dict(n_train=2, n_valid=1, n_test=1, image_size=(28, 28))
    settings = dict(dataset="synthetic", data_dir=str(tmp_path / "data"), num_epochs=1,
                    batch_size=(1, 1, 1), data_augmentation={}, savepath=str(tmp_path / "run"),
                    seed=1, model="fcn8", dataset_options=options)
    settings.update(overrides)
    return TrainingConfig(**settings)


def _train_error(config):
    with pytest.raises(ValueError) as info:
        train(config, log=lambda line: None, progress=False)
    return str(info.value)


def test_valid_settings_reach_the_model(tmp_path, no_model):
    config = _config(tmp_path, early_stop_class=1,
                     data_augmentation={"crop_size": [MIN_INPUT_SIZE, 30],
                                        "horizontal_flip": True, "fill_mode": "constant"})
    with pytest.raises(ReachedTheModel):
        train(config, log=lambda line: None, progress=False)


# 1. fill_mode ---------------------------------------------------------------------------

@pytest.mark.parametrize("fill_mode", ["mirror", 3, "grid-wrap"])
@pytest.mark.parametrize("other", [{}, {"horizontal_flip": True}])
def test_unsupported_fill_mode_is_refused(tmp_path, no_model, fill_mode, other):
    message = _train_error(_config(tmp_path,
                                   data_augmentation={"fill_mode": fill_mode, **other}))
    assert "fill_mode" in message and repr(fill_mode) in message
    assert "accepted values: 'constant', 'nearest', 'reflect', 'wrap'" in message


def test_fill_mode_constant_alone_means_no_augmentation(tmp_path):
    assert training._augmentation(_config(tmp_path, data_augmentation={"fill_mode": "constant"}),
                                  2) is None


def test_cli_reports_the_fill_mode(tmp_path, no_model, capsys):
    code = main(["train", "-data_augmentation", '{"fill_mode": "mirror"}',
                 "--savepath", str(tmp_path / "run"), "--synthetic-images", "2", "1", "1",
                 "--synthetic-size", "28", "28", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "fcn8 train: error: " in err and "'mirror'" in err


# 2. -early_stop_class -------------------------------------------------------------------

@pytest.mark.parametrize("value", [2, 5, -1])
def test_early_stop_class_out_of_range_is_refused(tmp_path, no_model, value):
    message = _train_error(_config(tmp_path, early_stop_class=value))
    assert f"-early_stop_class {value}" in message
    assert "0..1" in message and "2 classes" in message
    assert not (tmp_path / "run").exists()  # nothing written


# 3. -ne, -max_patience, -batch_size ------------------------------------------------------

@pytest.mark.parametrize("name, flag", [("num_epochs", "-num_epochs"),
                                        ("max_patience", "-max_patience")])
@pytest.mark.parametrize("value", [0, -3])
def test_epochs_and_patience_must_be_positive(tmp_path, no_model, name, flag, value):
    message = _train_error(_config(tmp_path, **{name: value}))
    assert flag in message and f"got {value}" in message
    assert not (tmp_path / "data").exists()  # refused before reading the data


@pytest.mark.parametrize("sizes, split", [((0, 1, 1), "train"), ((1, -2, 1), "valid"),
                                          ((1, 1, 0), "test")])
def test_batch_sizes_must_be_positive(tmp_path, no_model, sizes, split):
    message = _train_error(_config(tmp_path, batch_size=sizes))
    assert "-batch_size" in message and f"the {split} batch size" in message


@pytest.mark.parametrize("argv, words", [
    (["-ne", "0"], ["-num_epochs (-ne)", "got 0"]),
    (["-max_patience", "-1"], ["-max_patience", "got -1"]),
    (["-batch_size", "2", "0", "1"], ["-batch_size", "valid batch size", "got 0"]),
])
def test_cli_names_the_flag(tmp_path, no_model, capsys, argv, words):
    code = main(["train", *argv, "--savepath", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fcn8 train: error: ")
    for word in words:
        assert word in err


# 4. input sizes -------------------------------------------------------------------------

def test_minimum_input_size_is_the_networks():
    net = buildFCN8(3, pt.tensor4("x"), n_classes=2)
    assert MIN_INPUT_SIZE == 26
    shapes = {row.name: row.output_shape for row in
              layer_table(net, (1, 3, MIN_INPUT_SIZE, MIN_INPUT_SIZE))}
    assert shapes["fc6"][2:] == (1, 1)
    shapes = {row.name: row.output_shape for row in
              layer_table(net, (1, 3, MIN_INPUT_SIZE - 1, MIN_INPUT_SIZE))}
    assert shapes["fc6"][2] == 0


@pytest.mark.parametrize("crop, words", [
    ([10, 30], ["crop_size", "height 10", f"at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"]),
    (25, ["crop_size", "height 25"]),
    ([10.7, 10.2], ["crop_size", "integers", "10.7"]),
    ([30.0, 30], ["crop_size", "integers"]),
])
def test_small_or_fractional_crops_are_refused(tmp_path, no_model, crop, words):
    message = _train_error(_config(tmp_path, data_augmentation={"crop_size": crop}))
    for word in words:
        assert word in message
    assert not (tmp_path / "data").exists()


def test_dataset_images_too_small_are_named(tmp_path, no_model):
    options = dict(n_train=2, n_valid=1, n_test=1, image_size=(20, 28))
    message = _train_error(_config(tmp_path, dataset_options=options))
    assert "train image" in message and "height 20" in message
    assert str(tmp_path / "data") in message and f"at least {MIN_INPUT_SIZE}" in message
    assert not (tmp_path / "run").exists()


def test_small_training_images_are_fine_when_cropped_but_not_the_valid_ones(tmp_path,
                                                                           no_model):
    options = dict(n_train=2, n_valid=1, n_test=1, image_size=(20, 28))
    message = _train_error(_config(tmp_path, dataset_options=options,
                                   data_augmentation={"crop_size": [32, 32]}))
    assert message.startswith("valid image ") and "height 20" in message


def test_augmentation_refuses_fractional_crop_sizes():
    with pytest.raises(ValueError, match=r"integers.*10\.7"):
        Augmentation(crop_size=(10.7, 10.2))
    with pytest.raises(ValueError, match="integers"):
        Augmentation(crop_size=10.5)


@pytest.mark.parametrize("size", [["10", "28"], ["28", "0"]])
def test_cli_refuses_small_synthetic_images(tmp_path, no_model, capsys, size):
    code = main(["train", "--synthetic-size", *size, "--savepath", str(tmp_path / "run"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--synthetic-size" in err and f"at least {MIN_INPUT_SIZE}" in err


@pytest.mark.parametrize("size", [["25", "224"], ["224", "0"], ["-5", "-5"]])
def test_inspect_refuses_sizes_below_the_minimum(capsys, size):
    code = main(["inspect", "--size", *size])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("fcn8 inspect: error: --size")
    assert f"at least {MIN_INPUT_SIZE}" in captured.err


def test_inspect_accepts_the_minimum(capsys):
    assert main(["inspect", "--n-classes", "2", "--size", "26", "26"]) == 0
    assert "1x2x26x26" in capsys.readouterr().out


# 5. DropoutLayer p ----------------------------------------------------------------------

@pytest.mark.parametrize("p", [1, 1.0, -0.1, 1.5, float("nan"), True])
def test_dropout_refuses_p_outside_0_1(p):
    with pytest.raises(ValueError) as info:
        DropoutLayer(InputLayer((None, 4)), p=p, name="drop6")
    assert "'drop6'" in str(info.value) and "[0, 1)" in str(info.value)
    assert repr(p) in str(info.value)


@pytest.mark.parametrize("p", [0, 0.0, 0.5, np.float32(0.25), 0.999])
def test_dropout_accepts_p_in_0_1(p):
    assert DropoutLayer(InputLayer((None, 4)), p=p).p == p


def test_dropout_accepts_a_symbolic_p():
    p = pt.scalar("p")
    assert DropoutLayer(InputLayer((None, 4)), p=p).p is p
