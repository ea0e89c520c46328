"""``fcn8_lasagne.compile.function(..., devices=...)``: data-parallel steps over several JAX
devices equal one-device steps with the same global batch, and multi-process runs
(``initialize_distributed``) equal one process.

JAX fixes its device count when it starts, so the multi-device checks run
``tests/sharding_worker.py`` in subprocesses with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (CPU devices simulated on this
machine's cores) and read the JSON line it prints.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as compiling
from fcn8_lasagne.compile import function

jax = pytest.importorskip("jax")

WORKER = Path(__file__).with_name("sharding_worker.py")
ROOT = WORKER.parent.parent
PIXELS = 8 * 8  # the worker's images are 8x8


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


def _worker(*args, devices=None, timeout=240):
    done = subprocess.run([sys.executable, str(WORKER), *map(str, args)], cwd=ROOT,
                          env=_env(devices), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def compared():
    """One worker run: 3 Adam steps at a global batch of 4 on 1 device, 2 and 4 devices."""
    return _worker("compare", "--devices", 2, 4, "--batch", 4, "--steps", 3, devices=4)


# --- in this process (one CPU device): argument errors -----------------------------------

def test_devices_with_the_c_backend_is_refused():
    x = pt.matrix("x")
    with pytest.raises(ValueError, match="devices= needs a JAX device"):
        function([x], x.sum(), device="cpu", devices=2)
    with pytest.raises(ValueError, match="batch_inputs= applies only with devices="):
        function([x], x.sum(), device="jax", batch_inputs=[x])


def test_more_devices_than_present_names_the_count_and_the_cpu_flag():
    x = pt.matrix("x")
    present = len(jax.devices())
    with pytest.raises(ValueError) as caught:
        function([x], x.sum(), device="jax", devices=present + 1)
    message = str(caught.value)
    assert f"devices={present + 1} but JAX sees {present} cpu device(s)" in message
    assert f"XLA_FLAGS=--xla_force_host_platform_device_count={present + 1}" in message
    for bad, text in [(0, "at least one"), ([], "at least one"), ("some", "expected an int"),
                      ([1, 2], "must hold JAX devices"),
                      ([jax.devices()[0]] * 2, "listed twice")]:
        with pytest.raises(ValueError, match=text):
            function([x], x.sum(), device="jax", devices=bad)


def test_batch_inputs_must_be_inputs_with_an_axis():
    x, y, s = pt.matrix("x"), pt.matrix("y"), pt.scalar("s")
    with pytest.raises(ValueError, match="is not one of the function's inputs"):
        function([x], x.sum(), device="jax", devices=1, batch_inputs=[y])
    with pytest.raises(ValueError, match="rank 0"):
        function([x, s], x.sum() * s, device="jax", devices=1, batch_inputs=[s])


def test_one_device_mesh_matches_the_plain_jax_function():
    """devices=1 takes the sharded path (mesh of one); a scalar input stays whole and only
    the listed batch input is split."""
    floatX = "float32"
    x, s = pt.matrix("x"), pt.scalar("s")
    plain = function([x, s], (x * s).sum(axis=1), device="jax")
    sharded = function([x, s], (x * s).sum(axis=1), device="jax", devices=1)
    assert isinstance(sharded, compiling.ShardedFunction)
    assert sharded.batch_indices == {0} and sharded.mesh.axis_names == ("batch",)
    value = np.arange(6, dtype=floatX).reshape(3, 2)
    np.testing.assert_array_equal(np.asarray(sharded(value, 2)), np.asarray(plain(value, 2)))
    with pytest.raises(TypeError):  # the input filter is PyTensor's: no silent float64 cut
        sharded(value.astype("float64"), 2)


def test_a_one_device_step_with_dropout_compiles_once():
    """The generator's state and the parameters are committed to the device before the
    first call, as the values the step returns are: the second call reuses the program."""
    import pytensor

    from fcn8_lasagne import layers

    x = pt.matrix("x")
    net = layers.DropoutLayer(layers.DenseLayer(layers.InputLayer((None, 3), x), 4,
                                                nonlinearity=None), p=0.5)
    loss = ((layers.get_output(net) - 1) ** 2).sum()
    params = layers.get_all_params(net, trainable=True)
    step = function([x], loss, updates=[(p, p - 0.01 * g)
                                        for p, g in zip(params, pytensor.grad(loss, params))],
                    device="jax")
    value = np.ones((2, 3), dtype="float32")
    losses = [float(step(value)) for _ in range(3)]
    compiled = next(iter(step._compiled.values()))
    assert compiled.vm.jit_fn._cache_size() == 1
    assert len(set(losses)) == 3  # new masks and weights each step


def test_writer_is_process_zero_and_bad_distributed_arguments_are_named():
    assert compiling.process_index() == 0 and compiling.is_writer()
    for args, text in [(("localhost", 2, 0), "expected 'host:port'"),
                       (("localhost:1", 0, 0), "need at least 1"),
                       (("localhost:1", 2, 2), "expected 0 <= process_id < 2"),
                       (("localhost:1", 2, -1), "expected 0 <= process_id < 2")]:
        with pytest.raises(ValueError, match=text):
            compiling.initialize_distributed(*args)
    with pytest.raises(ValueError, match="must be positive"):
        compiling.initialize_distributed("localhost:1", 2, 1, timeout_s=0)


# --- 4 simulated CPU devices ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("devices", ["2", "4"])
def test_data_parallel_steps_equal_the_one_device_steps(compared, devices):
    assert compared["device_count"] == 4
    one, many = compared["None"], compared[devices]
    np.testing.assert_allclose(many["losses"], one["losses"], rtol=2e-6)
    # the losses move: the check compares trained parameters, not the initial ones
    assert one["losses"][0] - one["losses"][-1] > 0.1
    for got, want in zip(many["params"], one["params"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    loss, (true_positives, unions) = many["metrics"]
    want_loss, (want_tp, want_unions) = one["metrics"]
    np.testing.assert_allclose(loss, want_loss, rtol=2e-6)
    assert true_positives == want_tp and unions == want_unions  # counts: exact
    assert many["prediction_shape"] == one["prediction_shape"] == [4 * PIXELS, 3]
    np.testing.assert_allclose(many["prediction"], one["prediction"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_batch_norm_statistics_are_those_of_the_global_batch():
    # synchronised batch normalisation: the batch mean and variance are XLA reductions over
    # the whole sharded batch, so N devices train as one, running averages included
    result = _worker("batchnorm", "--devices", 2, 4, "--batch", 4, "--steps", 3, devices=4)
    one = result["None"]
    assert {"mean", "inv_std"} <= set(one["names"])
    for devices in ("2", "4"):
        np.testing.assert_allclose(result[devices]["losses"], one["losses"], rtol=2e-6)
        for name, got, want in zip(one["names"], result[devices]["params"], one["params"]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [2, 4])
def test_parameters_and_adam_state_stay_replicated_on_every_device(compared, devices):
    placement = compared[str(devices)]["placement"]
    # 6 parameters, their 12 Adam moments and Adam's step counter
    assert placement["count"] == compared["None"]["placement"]["count"] == 19
    assert placement["replicated"] and placement["device_counts"] == [devices]
    assert compared["None"]["placement"]["device_counts"] == [1]


@pytest.mark.slow
@pytest.mark.parametrize("devices", [2, 4])
def test_flattened_labels_split_at_the_image_boundaries(compared, devices):
    """The labels are (B·H·W,) batch-major: with B divisible by N, device d holds the
    labels of exactly the images it holds; XLA sums the gradients across devices."""
    layout = compared[str(devices)]["layout"]
    share = 4 // devices
    assert sorted(layout["images"].values()) == [[d * share, (d + 1) * share]
                                                 for d in range(devices)]
    for device, (start, stop) in layout["images"].items():
        assert layout["labels"][device] == [start * PIXELS, stop * PIXELS]
    assert layout["all_reduces"] > 0


@pytest.mark.slow
def test_one_device_functions_read_parameters_a_sharded_step_left_on_several(compared):
    np.testing.assert_allclose(compared["after"]["jax"], compared["4"]["prediction"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compared["after"]["cpu"], compared["4"]["prediction"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_dropout_masks_are_the_one_device_masks_and_the_step_compiles_once():
    """The generator's state is replicated like the parameters: the masks (drawn for the
    global shape) equal one device's, and the second call does not compile again."""
    result = _worker("dropout", "--devices", 2, 4, "--batch", 4, "--steps", 3, devices=4)
    for devices in ("2", "4"):
        np.testing.assert_allclose(result[devices]["losses"], result["None"]["losses"],
                                   rtol=2e-6)
        assert result[devices]["programs"] == 1
    assert result["None"]["programs"] == 1
    assert len(set(result["None"]["losses"])) == 3


@pytest.mark.slow
def test_an_indivisible_batch_and_too_many_devices_are_named():
    messages = _worker("errors", devices=4)
    assert "input input_var has a batch of 3, not divisible by the 2 devices" in \
        messages["indivisible"]
    assert "devices=64 but JAX sees 4 cpu device(s)" in messages["too_many"]
    assert "xla_force_host_platform_device_count=64" in messages["too_many"]


# --- two processes on localhost ------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_equal_one_process_and_only_process_zero_writes(tmp_path):
    port = _free_port()
    outs = [tmp_path / f"process{rank}.npz" for rank in range(2)]
    command = [sys.executable, str(WORKER), "process", "--coordinator", f"127.0.0.1:{port}",
               "--num-processes", "2", "--batch", "4", "--steps", "3", "--timeout", "60"]
    running = [subprocess.Popen(command + ["--process-id", str(rank), "--out", str(out)],
                                cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for rank, out in enumerate(outs)]
    results = []
    try:
        for process in running:
            stdout, stderr = process.communicate(timeout=240)
            assert process.returncode == 0, stderr[-3000:]
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    single = _worker("single", "--batch", 4, "--steps", 3, "--out", tmp_path / "single.npz")
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["process_count"] == 2 and r["device_count"] == 2 for r in results)
    assert [r["wrote"] for r in results] == [True, False]
    assert outs[0].exists() and not outs[1].exists()
    for result in results:  # every process receives the global loss
        np.testing.assert_allclose(result["losses"], single["losses"], rtol=2e-6)
    with np.load(outs[0]) as got, np.load(tmp_path / "single.npz") as want:
        assert got.files == want.files and len(got.files) == 7  # losses + 6 parameters
        for name in want.files:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_a_coordinator_that_does_not_answer_fails_in_time_with_a_message():
    port = _free_port()  # nothing listens there
    outcome = _worker("join", "--coordinator", f"127.0.0.1:{port}", "--process-id", 1,
                      "--timeout", 2, timeout=60)
    assert outcome["error"] is not None and outcome["seconds"] < 10
    assert (f"process 1 of 2: the coordinator 127.0.0.1:{port} did not answer within 2.0 s"
            in outcome["error"])
    assert "start process 0 there first" in outcome["error"]


@pytest.mark.slow
def test_a_coordinator_whose_peers_never_join_ends_in_bounded_time():
    """Process 0 runs the coordinator; with no process 1, JAX ends it (no hang)."""
    done = subprocess.run(
        [sys.executable, str(WORKER), "join", "--coordinator", f"127.0.0.1:{_free_port()}",
         "--process-id", "0", "--timeout", "2"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "DEADLINE_EXCEEDED" in done.stderr
