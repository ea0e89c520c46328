"""The fcn8 command end to end on tiny synthetic data."""

import json

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne.cli import _train_config, build_parser, main
from fcn8_lasagne.data import Polyps912
from fcn8_lasagne.layers import set_all_param_values
from fcn8_lasagne.models import buildFCN32
from fcn8_lasagne.weights import read_npz_values

TINY = ["--synthetic-images", "4", "2", "2", "--synthetic-size", "28", "32"]


def test_inspect_prints_the_layer_table(capsys):
    assert main(["inspect", "--model", "fcn8", "--n-classes", "2", "--size", "224", "224"]) == 0
    out = capsys.readouterr().out
    assert "upsample +(28, 28)" in out and "score_pool4 +(5, 5)" in out
    assert "1x4096x7x7" in out and out.rstrip().endswith("134,271,436")


def test_train_flags_are_the_tutorials():
    args = build_parser().parse_args(
        ["train", "-dataset", "polyps", "-learning_rate", "0.001", "-penal_cst", "0.1",
         "-ne", "3", "-max_patience", "5", "-batch_size", "4", "2", "1",
         "-data_augmentation", '{"crop_size": [32, 32], "horizontal_flip": true}',
         "-early_stop_class", "1", "-train_from_0_255", "False"])
    assert (args.learning_rate, args.penal_cst, args.num_epochs, args.max_patience) == \
        (0.001, 0.1, 3, 5)
    assert args.batch_size == [4, 2, 1] and args.early_stop_class == 1
    assert args.data_augmentation == {"crop_size": [32, 32], "horizontal_flip": True}
    assert args.train_from_0_255 is False  # the original's type=bool made this True
    assert build_parser().parse_args(["train", "--num_epochs", "7"]).num_epochs == 7


def test_synthetic_runs_are_seeded_by_default():
    def seed(*arguments):
        return _train_config(build_parser().parse_args(["train", *arguments])).seed

    assert seed() == 1
    assert seed("--seed", "5") == 5
    assert seed("-dataset", "polyps", "--data-dir", "x") is None   # unseeded, as the tutorial


def test_train_without_data_dir_for_real_dataset_is_an_error(capsys):
    assert main(["train", "-dataset", "camvid"]) == 2
    assert "fcn8 train: error: -dataset camvid needs --data-dir" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data, run = folder / "data", folder / "run"
    code = main(["train", "-dataset", "synthetic", "--data-dir", str(data), *TINY, "-ne", "2",
                 "-batch_size", "2", "1", "1", "--savepath", str(run), "--model", "fcn32",
                 "--seed", "3", "--no-progress", "--time-budget", "0"])
    assert code == 0
    return data, run


@pytest.mark.slow
def test_train_writes_the_tutorials_files(trained_run, capsys):
    data, run = trained_run
    for name in ("fcn8_output.log", "config.txt", "new_fcn8_model_best.npz",
                 "new_fcn8_model_last.npz", "fcn8_errors_best.npz", "fcn8_errors_last.npz"):
        assert (run / name).exists(), name
    lines = (run / "fcn8_output.log").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["EPOCH 0", "EPOCH 1"]
    import pytensor.tensor as pt

    net = buildFCN32(3, pt.tensor4(), n_classes=2)
    set_all_param_values(net["probs"], read_npz_values(run / "new_fcn8_model_best.npz"))


@pytest.mark.slow
def test_evaluate_json_and_table(trained_run, capsys):
    data, run = trained_run
    args = ["evaluate", str(run / "new_fcn8_model_best.npz"), "--model", "fcn32",
            "--dataset", "synthetic", "--data-dir", str(data), *TINY]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["background", "polyp"]
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (2, 2)
    # rows are the true classes: every non-void pixel of the test split, whatever the
    # weights predict (the synthetic files are in the Polyps912 layout)
    label_counts = Polyps912(data, "test").class_counts()  # background, polyp, void
    assert label_counts[:2].min() > 0
    np.testing.assert_array_equal(matrix.sum(axis=1), label_counts[:2])
    # the scores are the confusion matrix's
    hits = np.diag(matrix)
    assert report["pixel_accuracy"] == pytest.approx(hits.sum() / matrix.sum(), rel=1e-12)
    iou = hits / (matrix.sum(axis=0) + matrix.sum(axis=1) - hits)
    np.testing.assert_allclose(report["per_class_iou"], iou, rtol=1e-12)
    assert report["mean_iou"] == pytest.approx(iou.mean(), rel=1e-12)
    assert main(args) == 0
    assert "confusion matrix" in capsys.readouterr().out


@pytest.mark.slow
def test_predict_and_dump_activations(trained_run, tmp_path, capsys):
    data, run = trained_run
    weights = str(run / "new_fcn8_model_best.npz")
    image = tmp_path / "frame.png"
    Image.fromarray((np.random.default_rng(0).uniform(0, 255, (30, 34, 3))).astype(np.uint8)
                    ).save(image)
    assert main(["predict", weights, str(image), "--out", str(tmp_path / "out"),
                 "--model", "fcn32"]) == 0
    labels = np.asarray(Image.open(tmp_path / "out" / "frame_labels.png"))
    assert labels.shape == (30, 34) and labels.max() <= 1
    assert np.asarray(Image.open(tmp_path / "out" / "frame_overlay.png")).shape == (30, 34, 3)
    out = tmp_path / "acts.npz"
    assert main(["dump-activations", weights, str(image), str(out), "--model", "fcn32",
                 "--layers", "score_fr", "probs_dimshuffle", "--size", "32", "36"]) == 0
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["input", "probs_dimshuffle", "score_fr"]
        assert arrays["probs_dimshuffle"].shape == (1, 2, 32, 36)
        np.testing.assert_allclose(arrays["probs_dimshuffle"].sum(axis=1), 1, rtol=1e-5)


def test_errors_are_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    image = tmp_path / "frame.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert main(["predict", str(bad), str(image), "--out", str(tmp_path / "o")]) == 2
    assert "bad.npz" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(bad), str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no images" in capsys.readouterr().err


def test_precision_flag_names_the_compile_precisions_and_needs_a_jax_device(tmp_path, capsys):
    from fcn8_lasagne import cli, compile as compiling

    assert sorted(cli.PRECISIONS) == sorted(compiling.PRECISIONS)
    image = tmp_path / "frame.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    arguments = ["predict", str(tmp_path / "w.npz"), str(image), "--out", str(tmp_path / "o")]
    assert main(arguments + ["--precision", "tf32"]) == 2
    assert "--precision tf32 needs --device jax or gpu" in capsys.readouterr().err
    assert compiling.get_matmul_precision() == "float32"


def test_train_refuses_a_savepath_holding_a_run(tmp_path, monkeypatch, capsys):
    from fcn8_lasagne import training

    def fake_build(top_layer, input_var, target_var, n_classes, void_labels, *args, **kwargs):
        return training.TrainingFunctions(
            lambda X, y: np.float32(0.3),
            lambda X, y: (np.float32(0.5), np.float32(0.75), np.ones((2, n_classes))),
            None, [], {})

    monkeypatch.setattr(training, "build_functions", fake_build)
    run = tmp_path / "run"
    command = ["train", "--data-dir", str(tmp_path / "data"), *TINY, "-ne", "1",
               "-batch_size", "2", "1", "1", "--savepath", str(run), "--model", "fcn32",
               "--no-progress"]
    assert main(command) == 0
    best = (run / "new_fcn8_model_best.npz").read_bytes()
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"fcn8 train: {run} already holds a training run (" in err
    assert "--resume" in err and "--overwrite" in err
    assert (run / "new_fcn8_model_best.npz").read_bytes() == best
    assert main(command + ["--overwrite"]) == 0
    assert (run / "fcn8_output.log").read_text().count("EPOCH") == 1
