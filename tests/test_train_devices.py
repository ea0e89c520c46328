"""``fcn8 train --devices N`` and the multi-process flags.

The checks that need no devices run in this process; the training runs run ``fcn8 train``
in subprocesses with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (JAX fixes its
device count when it starts), on 4 tiny synthetic training images (2 steps of 2, one epoch).

The runs compare the losses and weights, not accuracy and Jaccard: from the Glorot start
FCN-8's ReLU-ed scores are mostly zero, so the prediction is uniform with exact ties, whose
argmax flips with any rounding difference; and Adam's first steps are ``lr·sign(g)`` for
gradients that are zero up to rounding. So the runs use a tiny learning rate (1e-7), which
keeps such flips below the float32 tolerance of the losses.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fcn8_lasagne.cli import main
from fcn8_lasagne.training import TrainingConfig, _check_last_batches, check_settings

# Full-size networks: one such module at a time (pytest.ini: --dist loadgroup), so that
# two of them never share the machine's 24 GB.
pytestmark = pytest.mark.xdist_group("large_memory")

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--synthetic-images", "4", "2", "2", "--synthetic-size", "28", "32", "-ne", "1",
        "-batch_size", "2", "2", "2", "--no-progress", "--device", "jax"]
LEARNING_RATE = ["-learning_rate", "1e-7"]
FILES = {"config.txt", "fcn8_errors_best.npz", "fcn8_errors_last.npz", "fcn8_output.log",
         "final_results.json", "learning_curves.png", "new_fcn8_model_best.npz",
         "new_fcn8_model_last.npz", "training_state.npz"}


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_devices_with_the_cpu_backend_is_refused(tmp_path, capsys):
    assert main(["train", *TINY[:-2], "--savepath", str(tmp_path / "r"),
                 "--devices", "2"]) == 2
    err = _one_error_line(capsys)
    assert "--devices 2 needs --device jax or gpu" in err
    assert not (tmp_path / "r").exists()


def test_an_indivisible_batch_is_named_before_anything_is_compiled(tmp_path, capsys):
    args = ["train", *TINY, "--savepath", str(tmp_path / "r"), "--devices", "2"]
    args[args.index("-batch_size") + 1] = "3"
    assert main(args) == 2
    err = _one_error_line(capsys)
    assert "-batch_size: the train batch size 3 is not divisible by the 2 devices" in err
    assert "(remainder 1)" in err
    args = ["train", *TINY, "--savepath", str(tmp_path / "r"), "--devices", "4"]
    args[args.index("-batch_size") + 3] = "6"  # test batch 6 % 4
    args[args.index("-batch_size") + 1:args.index("-batch_size") + 3] = ["4", "4"]
    assert main(args) == 2
    assert "the test batch size 6 is not divisible by the 4 devices (remainder 2)" in \
        _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_the_last_smaller_batch_of_a_split_must_divide_too():
    class Split(list):
        pass

    config = TrainingConfig(batch_size=(4, 2, 2), device="jax", devices=2)
    check_settings(config)
    _check_last_batches(config, [Split(range(8)), Split(range(4)), Split(range(4))], 2)
    with pytest.raises(ValueError, match=r"the train split's 9 images leave a last batch "
                                         r"of 1 \(batch size 4\).*remainder 1"):
        _check_last_batches(config, [Split(range(9)), Split(range(4)), Split(range(4))], 2)


def test_more_devices_than_present_is_the_compile_layers_error_on_one_line(tmp_path,
                                                                           capsys):
    import jax

    count = len(jax.devices()) + 1
    args = ["train", *TINY, "--savepath", str(tmp_path / "r"), "--devices", str(count)]
    size = str(2 * count)
    start = args.index("-batch_size") + 1
    args[start:start + 3] = [size, size, size]
    args[args.index("--synthetic-images") + 1:args.index("--synthetic-images") + 4] = \
        [size, size, size]
    assert main(args) == 2
    err = _one_error_line(capsys)
    assert f"devices={count} but JAX sees {count - 1}" in err
    assert not (tmp_path / "r" / "config.txt").exists()


def test_multi_process_flags_come_together_and_need_a_jax_device(tmp_path, capsys):
    base = ["train", *TINY, "--savepath", str(tmp_path / "r")]
    assert main(base + ["--coordinator", "localhost:1"]) == 2
    assert "needs all of --coordinator HOST:PORT, --num-processes P and --process-id I" in \
        _one_error_line(capsys)
    cpu = [arg for arg in base if arg not in ("--device", "jax")]
    assert main(cpu + ["--coordinator", "localhost:1", "--num-processes", "2",
                       "--process-id", "0"]) == 2
    assert "needs --device jax or gpu" in _one_error_line(capsys)


# --- training runs in subprocesses ------------------------------------------------------

def _env(devices=None):
    env = dict(os.environ)
    flags = [flag for flag in env.get("XLA_FLAGS", "").split()
             if not flag.startswith("--xla_force_host_platform_device_count")]
    if devices:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start(args, devices=None):
    return subprocess.Popen([sys.executable, "-m", "fcn8_lasagne.cli", "train", *TINY,
                             *LEARNING_RATE, *map(str, args)], cwd=ROOT, env=_env(devices),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=400):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, err[-3000:]
    return out


def _epoch_losses(out):
    """The training and validation costs of the EPOCH 0 line."""
    line = next(line for line in out.splitlines() if line.startswith("EPOCH 0:"))
    fields = line.split(", ")
    return [float(fields[0].split()[-1]), float(fields[1].split()[-1])]


def _compare_runs(one, other, rtol=1e-5, atol=1e-6):
    with np.load(one / "new_fcn8_model_last.npz") as a, \
            np.load(other / "new_fcn8_model_last.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)
    with np.load(one / "fcn8_errors_last.npz") as a, \
            np.load(other / "fcn8_errors_last.npz") as b:
        for key in ("arr_0", "arr_1"):  # validation and training costs
            np.testing.assert_allclose(a[key], b[key], rtol=rtol, err_msg=key)
    ra = json.loads((one / "final_results.json").read_text())["test"]
    rb = json.loads((other / "final_results.json").read_text())["test"]
    np.testing.assert_allclose(ra["loss"], rb["loss"], rtol=rtol)


@pytest.mark.slow
def test_two_devices_train_as_one_device_with_the_same_global_batch(tmp_path):
    one, two, plain = tmp_path / "one", tmp_path / "two", tmp_path / "plain"
    # one run at a time: each holds 5-8 GB (FCN-8's weights, Adam's moments and gradients on
    # every device, XLA's buffers), too much for two beside another test worker
    out_one = _finish(_start(["--savepath", one, "--devices", 1], devices=2))
    out_two = _finish(_start(["--savepath", two, "--devices", 2], devices=2))
    assert set(os.listdir(one)) == FILES == set(os.listdir(two))
    losses = _epoch_losses(out_one)
    assert losses[0] > 0.1  # the runs trained
    np.testing.assert_allclose(losses, _epoch_losses(out_two), rtol=1e-5, atol=2e-6)
    _compare_runs(one, two)
    assert "devices: 2" in (two / "config.txt").read_text()
    # the device count is no part of the saved state: one device resumes the 2-device run;
    # and a run without --devices trains the same (the same initial weights: JAX starts
    # before the seed is set)
    resumed = _finish(_start(["--savepath", two, "--resume", "-ne", 2], devices=2))
    out_plain = _finish(_start(["--savepath", plain], devices=2))
    assert "Resuming at epoch 1" in resumed and "EPOCH 1:" in resumed
    assert set(os.listdir(plain)) == FILES
    np.testing.assert_allclose(_epoch_losses(out_plain), losses, rtol=1e-5, atol=2e-6)
    _compare_runs(plain, one)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_only_process_zero_writes(tmp_path):
    port = _free_port()
    paths = [tmp_path / f"process{rank}" for rank in range(2)]
    runs = [_start(["--savepath", paths[rank], "--coordinator", f"127.0.0.1:{port}",
                    "--num-processes", 2, "--process-id", rank]) for rank in range(2)]
    outs = [_finish(run, timeout=240) for run in runs]
    assert set(os.listdir(paths[0])) == FILES
    assert not paths[1].exists()
    assert "EPOCH 0:" in outs[0] and "FINAL MODEL" in outs[0]
    assert "EPOCH" not in outs[1] and "FINAL" not in outs[1]
    assert np.isfinite(json.loads((paths[0] / "final_results.json").read_text())
                       ["test"]["loss"])
    # the same global batches as one process on 2 devices
    single = tmp_path / "single"
    _finish(_start(["--savepath", single, "--devices", 2], devices=2))
    _compare_runs(paths[0], single)
