"""``fcn8_lasagne.compile.function``: devices, shape specialisation, state on the device,
product precision and the errors for bad arguments (JAX on the CPU)."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from fcn8_lasagne import compile as compiling
from fcn8_lasagne.compile import function

jax = pytest.importorskip("jax")


def test_cpu_device_gives_a_c_backend_function():
    x = pt.vector("x")
    fn = function([x], 2 * x)
    assert isinstance(fn, compiling.HostFunction)
    assert isinstance(fn.function, pytensor.compile.Function)
    assert fn.maker.linker.c_thunks and fn.maker.linker.use_cloop  # the C VM
    np.testing.assert_array_equal(fn(np.arange(3, dtype=pytensor.config.floatX)), [0, 2, 4])


def test_unknown_device_and_precision_are_named():
    x = pt.vector("x")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        function([x], x, device="tpu")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        function([x], x, device="jax", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        compiling.set_matmul_precision("half")
    with pytest.raises(ValueError, match="needs a JAX device"):
        function([x], x, device="cpu", precision="tf32")


def test_gpu_device_without_a_gpu_says_so():
    if any(device.platform == "gpu" for device in jax.devices()):
        pytest.skip("this machine has a GPU")
    x = pt.vector("x")
    with pytest.raises(RuntimeError, match="JAX sees no GPU"):
        function([x], x, device="gpu")


def test_one_compilation_per_input_shape():
    x = pt.matrix("x")
    fn = function([x], x.sum(axis=0) * x.shape[0], device="jax")
    for rows in (2, 3, 2, 3, 2):
        value = np.ones((rows, 4), dtype=pytensor.config.floatX)
        np.testing.assert_allclose(fn(value), np.full(4, rows * rows))
    assert sorted(shape for (shape,) in fn._compiled) == [(2, 4), (3, 4)]


def test_updates_keep_parameters_on_the_device_and_match_the_c_backend():
    floatX = pytensor.config.floatX
    start = np.arange(6, dtype=floatX).reshape(2, 3)
    results = {}
    for device in ("cpu", "jax"):
        weights = pytensor.shared(start.copy(), name="W")
        steps = pytensor.shared(np.asarray(0, dtype=floatX), name="steps")
        x = pt.matrix("x")
        loss = ((x * weights) ** 2).sum()
        updates = {weights: weights - 0.01 * pytensor.grad(loss, weights), steps: steps + 1}
        fn = function([x], loss, updates=updates, device=device)
        for _ in range(3):
            fn(np.ones((2, 3), dtype=floatX))
        if device == "jax":
            # no host round trip: the storage holds JAX arrays between calls
            assert isinstance(weights.container.storage[0], jax.Array)
            assert isinstance(steps.container.storage[0], jax.Array)
        results[device] = np.asarray(weights.get_value()), float(steps.get_value())
    np.testing.assert_allclose(results["jax"][0], results["cpu"][0], rtol=1e-6)
    assert results["jax"][1] == results["cpu"][1] == 3.0


def test_read_only_parameters_move_to_the_device_once_and_back_for_the_c_backend():
    from fcn8_lasagne.layers import DenseLayer, InputLayer, get_all_param_values, get_output

    floatX = pytensor.config.floatX
    x = pt.matrix("x")
    dense = DenseLayer(InputLayer((None, 3), x), num_units=2, nonlinearity=None)
    output = get_output(dense)
    jax_forward = function([x], output, device="jax")
    cpu_forward = function([x], output, device="cpu")
    value = np.arange(6, dtype=floatX).reshape(2, 3)
    expected = cpu_forward(value)
    for _ in range(2):
        np.testing.assert_allclose(np.asarray(jax_forward(value)), expected, rtol=1e-6)
        # the weights stay on the device between calls: no host-to-device copy per call
        stored = dense.W.container.storage[0]
        assert isinstance(stored, jax.Array)
    assert jax_forward(value) is not None and dense.W.container.storage[0] is stored
    values = get_all_param_values(dense)
    assert all(type(v) is np.ndarray and v.flags.writeable for v in values)
    # the C backend runs on the same variables afterwards, and a new host value is used
    np.testing.assert_allclose(cpu_forward(value), expected, rtol=1e-6)
    assert type(dense.W.container.storage[0]) is np.ndarray
    dense.b.set_value(np.ones(2, dtype=floatX))
    np.testing.assert_allclose(np.asarray(jax_forward(value)), expected + 1, rtol=1e-6)


def test_a_jax_step_writes_its_updates_into_the_donated_buffers_of_the_old_values():
    """The old device buffers of updated variables go to XLA (no second copy of the
    parameters during a step): a value borrowed before the call is deleted by it, while
    copies from get_value(), read-only variables and host arrays given to set_value stay
    intact."""
    floatX = pytensor.config.floatX
    start = np.arange(6, dtype=floatX).reshape(2, 3)
    weights = pytensor.shared(start.copy(), name="W")
    scale = pytensor.shared(np.asarray(2, dtype=floatX), name="scale")
    x = pt.matrix("x")
    loss = (scale * x * weights).sum()
    step = function([x], loss, updates={weights: weights - pytensor.grad(loss, weights)},
                    device="jax")
    ones = np.ones((2, 3), dtype=floatX)
    step(ones)  # the values now live on the device
    borrowed, copied = weights.get_value(borrow=True), weights.get_value()
    read_only = scale.get_value(borrow=True)
    step(ones)
    assert borrowed.is_deleted()
    assert not copied.is_deleted() and not read_only.is_deleted()
    np.testing.assert_array_equal(np.asarray(copied), start - 2)
    np.testing.assert_array_equal(np.asarray(weights.get_value()), start - 4)
    host = start.copy()
    weights.set_value(host, borrow=True)
    step(ones)
    step(ones)
    np.testing.assert_array_equal(host, start)
    np.testing.assert_array_equal(np.asarray(weights.get_value()), start - 4)


def test_c_backend_runs_after_a_jax_training_step():
    floatX = pytensor.config.floatX
    weights = pytensor.shared(np.ones(3, dtype=floatX), name="W")
    x = pt.vector("x")
    step = function([x], [], updates={weights: weights * x}, device="jax")
    read = function([x], (weights * x).sum(), device="cpu")
    step(np.full(3, 2, dtype=floatX))
    assert float(read(np.ones(3, dtype=floatX))) == 6.0
    step(np.full(3, 2, dtype=floatX))
    assert float(read(np.ones(3, dtype=floatX))) == 12.0


class _PrecisionProbe(Op):
    """Identity whose JAX version records JAX's product precision when it is traced."""

    seen = []

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = inputs[0]


@pytest.fixture(scope="module")
def precision_probe():
    from pytensor.link.jax.dispatch import jax_funcify

    @jax_funcify.register(_PrecisionProbe)
    def _probe_in_jax(op, **kwargs):
        def probe(x):
            _PrecisionProbe.seen.append(jax.config.jax_default_matmul_precision)
            return x

        return probe

    return _PrecisionProbe()


def test_products_are_float32_by_default_and_precision_is_per_function(precision_probe):
    x = pt.vector("x")
    _PrecisionProbe.seen.clear()
    value = np.ones(3, dtype=pytensor.config.floatX)
    function([x], precision_probe(x), device="jax")(value)
    function([x], precision_probe(x), device="jax", precision="tf32")(value)
    function([x], precision_probe(x), device="jax", precision="bf16")(value)
    assert _PrecisionProbe.seen == ["float32", "tensorfloat32", "bfloat16"]


def test_set_matmul_precision_changes_the_default_of_later_functions(precision_probe):
    x = pt.vector("x")
    value = np.ones(3, dtype=pytensor.config.floatX)
    _PrecisionProbe.seen.clear()
    try:
        compiling.set_matmul_precision("tf32")
        assert compiling.get_matmul_precision() == "tf32"
        later = function([x], precision_probe(x), device="jax")
    finally:
        compiling.set_matmul_precision(None)
    assert compiling.get_matmul_precision() == "float32"
    later(value)
    # a second shape is traced under the function's precision, not today's default
    later(np.ones(4, dtype=pytensor.config.floatX))
    assert _PrecisionProbe.seen == ["tensorfloat32", "tensorfloat32"]


def test_jax_calls_give_no_dtype_truncation_warnings():
    x, labels = pt.matrix("x"), pt.ivector("labels")
    mean = x.sum() / x.size  # a float32 sum: PyTensor asks for a float64 accumulator
    fn = function([x, labels], [mean, labels.shape[0] * 2], device="jax")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fn(np.ones((2, 3), dtype=pytensor.config.floatX),
                    np.zeros(5, dtype=np.int32))
    assert float(result[0]) == 1.0 and int(result[1]) == 10


def test_saved_state_after_a_jax_step_is_numpy():
    from fcn8_lasagne.updates import adam, get_update_state_values

    floatX = pytensor.config.floatX
    weights = pytensor.shared(np.ones(3, dtype=floatX), name="W")
    x = pt.vector("x")
    loss = ((weights * x) ** 2).sum()
    step_updates = adam(loss, [weights], learning_rate=0.1)
    function([x], loss, updates=step_updates, device="jax")(np.ones(3, dtype=floatX))
    values = get_update_state_values(step_updates, [weights])
    assert len(values) == 3  # m, v and the step counter
    assert all(type(value) is np.ndarray for value in values)
    np.testing.assert_allclose(values[-1], 1.0)


def test_batch_norm_training_and_deterministic_outputs_in_one_jax_function():
    # Lasagne's BatchNormLayer updates its running averages through clones of mean and
    # inv_std that share their storage. Both outputs must read the averages from before the
    # call (the C backend updated them in place first), and JAX must not be handed one
    # buffer twice ("Attempt to use a buffer that was previously donated").
    from fcn8_lasagne import layers

    x = pt.tensor4("x")
    net = layers.batch_norm(layers.Conv2DLayer(layers.InputLayer((None, 2, 5, 5), x), 3, 3,
                                               pad=1))
    outputs = [layers.get_output(net), layers.get_output(net, deterministic=True)]
    params = layers.get_all_params(net)
    start = [p.get_value() for p in params]
    images = np.random.default_rng(0).random((2, 2, 5, 5)).astype(pytensor.config.floatX)

    def run(device):
        for param, value in zip(params, start):
            param.set_value(value.copy())
        step = function([x], outputs, device=device)
        return [[np.asarray(out) for out in step(images)] for _ in range(3)]

    c_calls = run("cpu")
    for device in ("cpu", "jax"):
        for param, value in zip(params, start):
            param.set_value(value.copy())
        deterministic_only = function([x], outputs[1], device=device)(images)
        np.testing.assert_allclose(c_calls[0][1], np.asarray(deterministic_only),
                                   rtol=1e-5, atol=1e-6)
    for calls_c, calls_jax in zip(c_calls, run("jax")):
        for c_out, jax_out in zip(calls_c, calls_jax):
            np.testing.assert_allclose(jax_out, c_out, rtol=1e-5, atol=1e-5)
    # the deterministic output moves with the running averages the training output updates
    assert not np.allclose(c_calls[0][1], c_calls[2][1])
