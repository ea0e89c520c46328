"""The dilated-ResNet FCN recipe (fcn8 train/evaluate --model fcn_resnet50/101).

Quick tests build networks without compiling them (lines, settings, head learning-rate
multipliers, the symbolic confusion matrix, weight-file loading); the end-to-end test trains
fcn_resnet50 on the synthetic VOC set from the command line, resumes it and evaluates it.
"""

import json
import re

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.cli import main
from fcn8_lasagne.inference import load_fcn_resnet_model
from fcn8_lasagne.layers import get_all_param_values, get_all_params
from fcn8_lasagne.models.fcn_resnet import buildFCNResNet, fcn_resnet_output_layers
from fcn8_lasagne.training import Scores, TrainingConfig, check_settings, get_recipe
from fcn8_lasagne.training.fcn_resnet import (
    FCNResNetRecipe,
    fcn_resnet_epoch_line,
    fcn_resnet_final_line,
    head_lr_multipliers,
    symbolic_confusion,
)
from fcn8_lasagne.weights import atomic_savez, read_npz_values

pytestmark = pytest.mark.xdist_group("large_memory")


def test_registry_gives_one_recipe_per_backbone_with_its_files():
    recipe = get_recipe("fcn_resnet101")
    assert isinstance(recipe, FCNResNetRecipe) and recipe.backbone == "resnet101"
    assert recipe.files.best_weights == "fcn_resnet101_model_best.npz"
    assert recipe.files.log == "fcn_resnet101_output.log"
    assert get_recipe("fcn_resnet50").backbone == "resnet50"
    assert recipe.datasets[0] == "synthetic_voc" and recipe.generated_datasets == (
        "synthetic_voc",)
    assert recipe.history_names[-2:] == ("pixacc_valid", "miou_valid")
    with pytest.raises(ValueError, match="serves fcn_resnet50, fcn_resnet101"):
        FCNResNetRecipe("fcn8")


def test_symbolic_confusion_counts_non_void_pixels(rng):
    scores = pt.tensor4("scores")
    labels = pt.itensor3("labels")
    count = pytensor.function([scores, labels], symbolic_confusion(scores, labels, 3),
                              mode="FAST_COMPILE")
    s = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    y = rng.integers(0, 4, (2, 4, 5)).astype("int32")        # 3 = void
    predicted = s.argmax(axis=1)
    expected = np.zeros((3, 3))
    for true, guess in zip(y.ravel(), predicted.ravel()):
        if true < 3:
            expected[true, guess] += 1
    np.testing.assert_array_equal(count(s, y), expected)


def test_epoch_and_final_lines_put_pixacc_and_miou_after_the_tutorials_fields():
    scores = Scores(loss=0.5, accuracy=0.75, totals=np.array([[1.0, 2.0], [2.0, 4.0]]),
                    jaccard_per_class=np.array([0.5, 0.5]), jaccard=0.5)
    line = fcn_resnet_epoch_line(3, 1.25, scores, 0.8, 0.45, 12.0)
    assert line == ("EPOCH 3: Avg epoch training cost train 1.250000, cost val 0.500000, "
                    "acc val 0.750000, jacc val class 0 0.500000, jacc val class 1 0.500000, "
                    "jacc val 0.500000, pixAcc val 0.800000, mIoU val 0.450000 took "
                    "12.000000 s")
    assert fcn_resnet_final_line(scores, 0.8, 0.45).endswith(
        "jacc test 0.500000, pixAcc test 0.800000, mIoU test 0.450000")


def test_gluoncv_scores_of_a_pass_and_the_early_stopping_score():
    recipe = get_recipe("fcn_resnet50")
    recipe._labelled = 10.0               # what val_fn summed over the pass
    scores = Scores(loss=0.5, accuracy=0.7, totals=np.array([[3.0, 4.0, 0.0],
                                                             [6.0, 5.0, 0.0]]),
                    jaccard_per_class=np.array([0.5, 0.8, np.nan]), jaccard=np.nan)
    config = TrainingConfig(dataset="synthetic_voc", model="fcn_resnet50")
    score = recipe.early_stopping_score(config, scores)
    assert score == pytest.approx((0.5 + 0.8 + 0.0) / 3)       # the absent class counts 0
    assert scores.pix_acc == pytest.approx(7 / 10) and recipe._labelled == 0
    values = recipe.history_values([1.0], scores)
    assert values[3] != values[3] and values[4:] == (scores.pix_acc, scores.miou)
    config.early_stop_class = 1
    assert recipe.early_stopping_score(config, scores) == pytest.approx(0.8)


@pytest.mark.parametrize("change, message", [
    ({"options": {"variant": "caffe"}}, "--variant must be one of gluoncv, torchvision"),
    ({"options": {"optimizer": "rmsprop"}}, "--optimizer must be one of sgd, adam"),
    ({"options": {"aux_weight": -1.0}}, "--aux-weight must be a finite number >= 0"),
    ({"options": {"crop_size": 0}}, "--crop-size must be a positive integer"),
    ({"data_augmentation": {"crop_size": (8, 8)}}, "-data_augmentation is FCN-8's"),
    ({"penal_cst": 1e-4}, "-penal_cst is FCN-8's L2 penalty; fcn_resnet50 uses --weight-decay"),
])
def test_bad_settings_are_refused_before_any_data_is_read(tmp_path, change, message):
    config = TrainingConfig(dataset="synthetic_voc", model="fcn_resnet50",
                            savepath=str(tmp_path / "run"), num_epochs=1, batch_size=(2, 2, 2))
    for key, value in change.items():
        setattr(config, key, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        check_settings(config, get_recipe("fcn_resnet50"))


def test_cli_lists_the_recipe_flags_and_refuses_other_datasets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "fcn_resnet50", "--help"])
    usage = capsys.readouterr().out
    for flag in ("--variant", "--aux-weight", "--optimizer", "--base-size", "--crop-size",
                 "--head-lr-mult", "--weight-decay", "--no-aux"):
        assert flag in usage
    assert main(["train", "--model", "fcn_resnet50", "-dataset", "synthetic"]) != 0
    error = capsys.readouterr().err
    assert "not a dataset of model fcn_resnet50" in error and "synthetic_voc" in error


@pytest.fixture(scope="module")
def torchvision_net():
    return buildFCNResNet(3, pt.tensor4("x"), n_classes=4, variant="torchvision")


def test_head_lr_multipliers_follow_each_original(torchvision_net):
    params = get_all_params(fcn_resnet_output_layers(torchvision_net), trainable=True)
    names = {param: param.name for param in params}
    torchvision = head_lr_multipliers(torchvision_net, "torchvision", 10.0, params)
    assert torchvision and all(names[p].startswith("aux_classifier.") for p in torchvision)
    assert set(torchvision.values()) == {10.0}
    # aux_classifier.0 (W), .1 (gamma, beta), .4 (W, b): BN statistics are not trainable
    assert len(torchvision) == 5
    gluon_net = buildFCNResNet(3, pt.tensor4("x"), n_classes=4, variant="gluoncv")
    gluon_params = get_all_params(fcn_resnet_output_layers(gluon_net), trainable=True)
    gluon = head_lr_multipliers(gluon_net, "gluoncv", 10.0, gluon_params)
    prefixes = {p.name.split(".")[0] for p in gluon}
    assert prefixes == {"head", "auxlayer"} and len(gluon) == 10


def test_weight_files_load_with_or_without_the_aux_head(tmp_path, torchvision_net):
    values = get_all_param_values(fcn_resnet_output_layers(torchvision_net))
    main_count = len(get_all_params(torchvision_net["probs"]))
    rng = np.random.default_rng(0)
    values = [(rng.standard_normal(v.shape) * 0.1 + (v if v.ndim == 1 else 0)).astype(v.dtype)
              for v in values]
    atomic_savez(tmp_path / "full.npz", *values)
    net, _ = load_fcn_resnet_model(str(tmp_path / "full.npz"), "fcn_resnet50")
    assert "classifier.0" in net and "aux" in net
    for loaded, saved in zip(get_all_param_values(fcn_resnet_output_layers(net)), values):
        np.testing.assert_array_equal(loaded, saved)
    atomic_savez(tmp_path / "main.npz", *values[:main_count])
    net, _ = load_fcn_resnet_model(str(tmp_path / "main.npz"), "fcn_resnet50", n_classes=4)
    np.testing.assert_array_equal(get_all_param_values(net["probs"])[-1],
                                  values[main_count - 1])
    with pytest.raises(ValueError, match=r"full\.npz: the weights are for 4 classes but 21"):
        load_fcn_resnet_model(str(tmp_path / "full.npz"), "fcn_resnet50", n_classes=21)
    with pytest.raises(ValueError, match=r"279 arrays, but a torchvision fcn_resnet101 has "
                                         r"534 .* is this a fcn_resnet50 file"):
        load_fcn_resnet_model(str(tmp_path / "full.npz"), "fcn_resnet101")
    atomic_savez(tmp_path / "fcn8.npz", np.zeros((64, 3, 3, 3), "float32"),
                 np.zeros(21, "float32"))
    with pytest.raises(ValueError, match=r"fcn8\.npz: 2 arrays, but a gluoncv fcn_resnet50"):
        load_fcn_resnet_model(str(tmp_path / "fcn8.npz"), "fcn_resnet50")
    atomic_savez(tmp_path / "other.npz", np.zeros((64, 3, 5, 5), "float32"))
    with pytest.raises(ValueError, match=r"other\.npz: the first array \(64, 3, 5, 5\) is "
                                         r"not the stem convolution"):
        load_fcn_resnet_model(str(tmp_path / "other.npz"), "fcn_resnet50")


@pytest.mark.slow
def test_train_resume_and_evaluate_from_the_command_line(tmp_path, monkeypatch, capsys):
    """fcn8 train --model fcn_resnet50 -dataset synthetic_voc (one epoch, with the progress
    bar), --resume for a second epoch, then fcn8 evaluate on the best weights."""
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    common = ["train", "--model", "fcn_resnet50", "-dataset", "synthetic_voc",
              "--savepath", str(run), "-batch_size", "8", "8", "8"]
    assert main(common + ["-num_epochs", "1"]) == 0
    first = capsys.readouterr()
    assert "epoch 0" in first.err                      # the tqdm bar
    assert re.search(r"EPOCH 0: Avg epoch training cost train [0-9.]+, .*jacc val [0-9.na]+, "
                     r"pixAcc val [0-9.]+, mIoU val [0-9.]+ took", first.out)
    assert "FINAL MODEL: err test" in first.out and "mIoU test" in first.out
    best = run / "fcn_resnet50_model_best.npz"
    saved = read_npz_values(str(best))
    # every parameter, BN running statistics included, moved from their start (0 and 1)
    net = buildFCNResNet(3, pt.tensor4("x"), n_classes=6, variant="gluoncv")
    names = [param.name for param in get_all_params(fcn_resnet_output_layers(net))]
    assert len(saved) == len(names) == 289
    by_name = dict(zip(names, saved))
    assert np.abs(by_name["conv1.1.mean"]).max() > 0
    assert np.abs(by_name["layer4.2.bn3.inv_std"] - 1).max() > 0

    assert main(common + ["-num_epochs", "2", "--resume"]) == 0
    second = capsys.readouterr().out
    assert "Resuming at epoch 1" in second and "EPOCH 1:" in second and "EPOCH 0:" not in second
    log = (run / "fcn_resnet50_output.log").read_text().splitlines()
    assert [line.split(":")[0] for line in log] == ["EPOCH 0", "EPOCH 1"]
    results = json.loads((run / "final_results.json").read_text())
    assert results["epochs_run"] == 2

    assert main(["evaluate", "--model", "fcn_resnet50", str(best), "-dataset",
                 "synthetic_voc", "--split", "valid", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"][:2] == ["background", "disc"] and len(report["per_class_iou"]) == 6
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() > 0
    true_positives = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - true_positives
    assert report["mIoU"] == pytest.approx(np.mean(true_positives / (np.spacing(1) + union)))
    assert report["pixAcc"] == pytest.approx(true_positives.sum() / matrix.sum())
    assert main(["evaluate", "--model", "fcn_resnet50", str(best), "-dataset",
                 "synthetic_voc", "--split", "valid"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^mIoU\s+[0-9.]+$", table, re.M)
    assert re.search(r"^pixAcc\s+[0-9.]+$", table, re.M)
    assert re.search(r"^background\s+[0-9.]+$", table, re.M)
