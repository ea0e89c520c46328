"""The whole FCN-8 compiled for JAX (``device='jax'``) against the C backend (``device='cpu'``).

The C backend runs the package's NumPy/BLAS kernels and is itself checked against the NumPy
references of ``tests/reference.py`` (``tests/models/test_fcn.py``, ``tests/test_training.py``);
the JAX backend runs the ``jax_funcify`` translations of the same ops through XLA. Here both
compile the same symbolic graphs and must agree:

* every named layer's deterministic output, at two input sizes served by one JAX function;
* the gradient of the tutorial's loss for all 42 parameters;
* one Adam step (``fcn8_lasagne.updates.adam``): parameters and optimiser state;
* dropout draws a fresh mask at every call.

Weights are He-scaled normal (``reference.scaled_random_params``): with the Glorot
initialisation the 20-layer ReLU stack shrinks activations until the probabilities are nearly
uniform, and equal outputs would prove little.

Why the VGG biases are zero in the gradient tests
-------------------------------------------------
``pad=100`` surrounds the image with a wide border whose activations do not depend on the
image. With zero biases that border is exactly 0 in every layer (all products are exact
zeros), so max-pooling windows there are exact ties and the pre-activations are exactly 0:
the gradient then depends on Theano's two rules — ``MaxPoolGrad`` gives a window's gradient to
*every* maximal input and ``relu(x) = 0.5 (x + |x|)`` has slope 1/2 at 0 — and a backend that
broke either rule would change the conv1–conv4 bias gradients by tens of percent. With
random biases the border holds one constant per channel, which a GEMM computes with
position-dependent rounding (the C kernels' conv2_1 values there already spread by about one
float32 ulp; XLA's did not): which inputs tie then depends on rounding, and the two backends
and the float64 NumPy reference were measured to differ by 10-150% in the conv1-conv4
gradients, none of them wrong. Zero VGG biases are also how Lasagne initialises the network
the tutorial trains.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import layers
from fcn8_lasagne.compile import function
from fcn8_lasagne.metrics import crossentropy_metric
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.updates import adam
from fcn8_lasagne.utils import host_value
from tests import reference

# Full-size networks: one such module at a time (pytest.ini: --dist loadgroup), so that
# two of them never share the machine's 24 GB.
pytestmark = pytest.mark.xdist_group("large_memory")

pytest.importorskip("jax")

N_CLASSES = 3
VOID_LABEL = 2
#: Two input sizes (batch, channels, height, width) that one compiled function must serve.
INPUT_SHAPES = [(1, 3, 37, 40), (2, 3, 30, 33)]
#: Layers whose output is the image itself or the variable fed in.
INPUT_LAYERS = ("input", "input_tmp")
#: Layers with parameters, in Lasagne's parameter order (W then b for each).
PARAMETER_LAYERS = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
    "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "score_fr", "score2",
    "score_pool4", "score4", "score_pool3", "upsample",
]
VGG_LAYERS = PARAMETER_LAYERS[:15]
SCORE_CONV_LAYERS = ("score_fr", "score_pool4", "score_pool3")
OUTPUT_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-4
LEARNING_RATE = 1e-4
#: Largest difference of one Adam step between the backends, as a fraction of the step size.
STEP_TOLERANCE = 0.01


def _relative_error(got, want):
    """Largest absolute difference divided by the largest magnitude of ``want``."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    scale = np.abs(want).max()
    return np.abs(got - want).max() / scale if scale > 0 else np.abs(got).max()


def _image_and_labels(shape, seed):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, shape).astype("float32")
    labels = rng.integers(0, N_CLASSES, size=shape[0] * shape[2] * shape[3]).astype("int32")
    return image, labels


@pytest.fixture(scope="module", autouse=True)
def full_float32_products():
    """Full float32 matmuls and convolutions (JAX uses TF32 on recent GPUs by default)."""
    from fcn8_lasagne.compile import get_matmul_precision, set_matmul_precision

    previous = get_matmul_precision()
    set_matmul_precision("float32")
    yield
    set_matmul_precision(previous)


@pytest.fixture(scope="module")
def fcn8():
    """FCN-8 (3 classes, trainable), its variables and two sets of well-scaled weights.

    Returns
    -------
    dict
        ``net``, ``input_var``, ``target_var``, ``params`` (the 42 shared variables),
        ``random_biases`` (He weights, small random biases) and ``zero_vgg_biases`` (the same
        with the VGG biases zero and positive score-convolution biases, see the module
        docstring).
    """
    np.random.seed(21)
    input_var, target_var = pt.tensor4("input_var"), pt.ivector("target_var")
    net = buildFCN8(3, input_var, n_classes=N_CLASSES, trainable=True)
    params = layers.get_all_params(net["probs"], trainable=True)
    assert [p.name for p in params] == [f"{name}.{kind}" for name in PARAMETER_LAYERS
                                        for kind in ("W", "b")]
    rng = np.random.default_rng(22)
    random_biases = reference.scaled_random_params([p.get_value().shape for p in params], rng)
    zero_vgg_biases = list(random_biases)
    for index, name in enumerate(PARAMETER_LAYERS):
        bias_index = 2 * index + 1
        if name in VGG_LAYERS:
            zero_vgg_biases[bias_index] = np.zeros_like(random_biases[bias_index])
        elif name in SCORE_CONV_LAYERS:
            # positive, so that each score ReLU passes gradient somewhere
            zero_vgg_biases[bias_index] = np.abs(random_biases[bias_index]) + np.float32(0.1)
    return dict(net=net, input_var=input_var, target_var=target_var, params=params,
                random_biases=random_biases, zero_vgg_biases=zero_vgg_biases)


def _set_values(params, values):
    for param, value in zip(params, values):
        param.set_value(value)


@pytest.fixture(scope="module")
def layer_functions(fcn8):
    """Every named layer's deterministic output, compiled for the C backend and for JAX."""
    names = [name for name in fcn8["net"] if name not in INPUT_LAYERS]
    outputs = layers.get_output([fcn8["net"][name] for name in names], deterministic=True)
    inputs = [fcn8["input_var"]]
    return names, function(inputs, outputs, device="cpu"), function(inputs, outputs,
                                                                    device="jax")


@pytest.fixture(scope="module")
def gradient_functions(fcn8):
    """The tutorial's loss and its 42 gradients, for the C backend and for JAX."""
    prediction = layers.get_output(fcn8["net"]["probs"], deterministic=True)
    loss = crossentropy_metric(prediction, fcn8["target_var"], void_labels=[VOID_LABEL])
    outputs = [loss] + pytensor.grad(loss, fcn8["params"])
    inputs = [fcn8["input_var"], fcn8["target_var"]]
    return function(inputs, outputs, device="cpu"), function(inputs, outputs, device="jax")


def test_every_layer_matches_c_backend_at_two_sizes(fcn8, layer_functions):
    """One JAX function, two input sizes: each layer equals the C backend's output."""
    _set_values(fcn8["params"], fcn8["random_biases"])
    names, cpu_fn, jax_fn = layer_functions
    for seed, shape in enumerate(INPUT_SHAPES):
        image, _ = _image_and_labels(shape, seed)
        expected = cpu_fn(image)
        got = jax_fn(image)
        assert len(got) == len(names)
        for name, got_value, want_value in zip(names, got, expected):
            assert np.abs(want_value).max() > 0, f"{name} is all zero at {shape}"
            error = _relative_error(got_value, want_value)
            assert error <= OUTPUT_TOLERANCE, (
                f"{name} at input {shape}: max error {error:.2e} of the layer's largest value")
        probabilities = dict(zip(names, expected))["probs_dimshuffle"]
        assert probabilities.shape == (shape[0], N_CLASSES) + shape[2:]
        # far from uniform (Glorot weights give a spread of ~1e-3 here, these ~0.14)
        assert probabilities.max() - probabilities.min() > 0.05


def test_border_holds_exact_ties_and_zero_pre_activations(fcn8, layer_functions):
    """With zero VGG biases the gradient tests below cross max-pool ties and ReLUs at 0."""
    _set_values(fcn8["params"], fcn8["zero_vgg_biases"])
    names, cpu_fn, _ = layer_functions
    image, _ = _image_and_labels(INPUT_SHAPES[0], 0)
    outputs = dict(zip(names, cpu_fn(image)))
    for block in range(1, 6):
        last_conv = outputs[f"conv{block}_{2 if block < 3 else 3}"]
        batch, channels, height, width = last_conv.shape
        windows = last_conv[:, :, :height // 2 * 2, :width // 2 * 2].reshape(
            batch, channels, height // 2, 2, width // 2, 2)
        all_tied = (windows == windows.max(axis=(3, 5), keepdims=True)).all(axis=(3, 5))
        assert all_tied.mean() > 0.1, f"pool{block}: only {all_tied.mean():.1%} tied windows"
    # conv1_1's border: zero input, zero bias, a pre-activation of exactly 0
    assert (outputs["conv1_1"] == 0).mean() > 0.5


def test_gradients_match_c_backend_at_two_sizes(fcn8, gradient_functions):
    """The loss and all 42 gradients agree, through max-pool ties and ReLUs at 0."""
    _set_values(fcn8["params"], fcn8["zero_vgg_biases"])
    cpu_fn, jax_fn = gradient_functions
    for seed, shape in enumerate(INPUT_SHAPES):
        image, labels = _image_and_labels(shape, 10 + seed)
        assert (labels == VOID_LABEL).any() and (labels != VOID_LABEL).any()
        expected_loss, *expected = cpu_fn(image, labels)
        got_loss, *got = jax_fn(image, labels)
        np.testing.assert_allclose(float(got_loss), float(expected_loss), rtol=1e-5)
        assert len(got) == len(expected) == 42
        for param, got_value, want_value in zip(fcn8["params"], got, expected):
            assert np.any(want_value != 0), f"{param.name} has a zero gradient at {shape}"
            error = _relative_error(got_value, want_value)
            assert error <= GRADIENT_TOLERANCE, (
                f"gradient of {param.name} at input {shape}: max error {error:.2e} of its "
                "largest value")


def test_adam_step_updates_parameters_like_c_backend(fcn8):
    """One training step with Lasagne's Adam moves all 42 parameters as the C backend does.

    FCN-8's parameters and Adam state are 1.6 GB: the test keeps one copy of the initial
    parameters and one of the C backend's result, and reads the JAX result variable by
    variable, so that it fits beside another test worker on a small machine.
    """
    _set_values(fcn8["params"], fcn8["zero_vgg_biases"])
    prediction = layers.get_output(fcn8["net"]["probs"], deterministic=True)
    loss = crossentropy_metric(prediction, fcn8["target_var"], void_labels=[VOID_LABEL])
    step_updates = adam(loss, fcn8["params"], learning_rate=LEARNING_RATE)
    # the state Adam keeps: two moments per parameter and the step counter, all zero at first
    state = [variable for variable in step_updates if variable not in set(fcn8["params"])]
    assert len(step_updates) == 3 * 42 + 1 and len(state) == 2 * 42 + 1
    assert all(not host_value(variable).any() for variable in state)
    inputs = [fcn8["input_var"], fcn8["target_var"]]
    image, labels = _image_and_labels(INPUT_SHAPES[0], 30)
    initial = {param: host_value(param) for param in fcn8["params"]}

    cpu_step = function(inputs, loss, updates=step_updates, device="cpu")
    cpu_loss = float(cpu_step(image, labels))
    del cpu_step
    cpu_after = {variable: host_value(variable) for variable in step_updates}
    for param, value in initial.items():
        param.set_value(value)
    for variable in state:
        variable.set_value(np.zeros_like(cpu_after[variable]))
    jax_step = function(inputs, loss, updates=step_updates, device="jax")
    jax_loss = float(jax_step(image, labels))
    del jax_step

    np.testing.assert_allclose(jax_loss, cpu_loss, rtol=1e-5)
    for variable in state:
        error = _relative_error(host_value(variable), cpu_after[variable])
        assert error <= GRADIENT_TOLERANCE, f"{variable.name} after one step: {error:.2e}"
    # the parameters, through their steps: a zero bias after one step is nothing but its
    # step, and steps differ most where a gradient is as small as epsilon
    for param in fcn8["params"]:
        cpu_move = cpu_after[param].astype(np.float64) - initial[param]
        jax_move = host_value(param).astype(np.float64) - initial[param]
        # Adam's first step moves each parameter by about learning_rate * sign(gradient)
        assert np.abs(cpu_move).max() > 0.5 * LEARNING_RATE, f"{param.name} did not move"
        step_error = np.abs(jax_move - cpu_move).max() / LEARNING_RATE
        assert step_error <= STEP_TOLERANCE, (
            f"{param.name}: steps differ by {step_error:.2%} of the learning rate")


@pytest.mark.filterwarnings("ignore:The RandomType SharedVariables:UserWarning")
def test_dropout_draws_fresh_masks_in_jax(fcn8):
    """Training-mode dropout: a new Bernoulli(1/2) mask at every call, kept values doubled."""
    _set_values(fcn8["params"], fcn8["random_biases"])
    net = fcn8["net"]
    names = ["fc6", "fc6_dropout", "fc7", "fc7_dropout"]
    outputs = layers.get_output([net[name] for name in names], deterministic=False)
    jax_fn = function([fcn8["input_var"]], outputs, device="jax")
    image, _ = _image_and_labels(INPUT_SHAPES[1], 40)
    kept_masks = []
    for _ in range(2):
        values = dict(zip(names, (np.asarray(value) for value in jax_fn(image))))
        for layer in ("fc6", "fc7"):
            before, after = values[layer], values[f"{layer}_dropout"]
            alive = before > 0
            kept = after[alive] != 0
            # a kept value is the input divided by 1 - p = 0.5; a dropped one is 0
            np.testing.assert_allclose(after[alive][kept], 2 * before[alive][kept], rtol=1e-6)
            assert np.all(after[~alive] == 0)
            assert abs(kept.mean() - 0.5) < 0.06, f"{layer}: kept {kept.mean():.1%}"
        kept_masks.append(values["fc6_dropout"] != 0)
    assert np.mean(kept_masks[0] != kept_masks[1]) > 0.2
