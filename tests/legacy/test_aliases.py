"""The import aliases: same module objects, opt-in only, clean uninstall, clear errors."""

import subprocess
import sys

import pytest

import fcn8_lasagne
from fcn8_lasagne import legacy

LEGACY_ROOTS = ("lasagne", "theano", "dataset_loaders", "data_loader")


def _legacy_modules():
    return sorted(name for name in sys.modules if name.partition(".")[0] in LEGACY_ROOTS)


def test_importing_fcn8_lasagne_alone_does_not_serve_lasagne():
    code = ("import fcn8_lasagne, fcn8_lasagne.layers, fcn8_lasagne.legacy\n"
            "for name in ('lasagne', 'theano', 'dataset_loaders'):\n"
            "    try:\n"
            "        __import__(name)\n"
            "    except ImportError:\n"
            "        print('absent', name)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split("\n")[:3] == ["absent lasagne", "absent theano",
                                             "absent dataset_loaders"]


def test_lasagne_submodules_are_this_packages_modules(installed):
    import lasagne
    import lasagne.layers
    import lasagne.layers.conv
    from lasagne.layers import Conv2DLayer

    import fcn8_lasagne.init
    import fcn8_lasagne.layers.conv
    import fcn8_lasagne.nonlinearities
    import fcn8_lasagne.objectives
    import fcn8_lasagne.random
    import fcn8_lasagne.regularization
    import fcn8_lasagne.updates
    import fcn8_lasagne.utils

    assert lasagne.layers is fcn8_lasagne.layers
    assert sys.modules["lasagne.layers"] is fcn8_lasagne.layers
    assert lasagne.layers.conv is fcn8_lasagne.layers.conv
    assert Conv2DLayer is fcn8_lasagne.layers.Conv2DLayer
    for name in ("nonlinearities", "init", "objectives", "updates", "regularization",
                 "utils", "random"):
        assert getattr(lasagne, name) is getattr(fcn8_lasagne, name)
        assert __import__(f"lasagne.{name}", fromlist=["_"]) is getattr(fcn8_lasagne, name)
    # the module keeps its own identity
    assert fcn8_lasagne.layers.__spec__.name == "fcn8_lasagne.layers"
    assert fcn8_lasagne.layers.__name__ == "fcn8_lasagne.layers"


def test_a_layer_added_later_resolves_without_enumeration(installed):
    import lasagne.layers

    class LateLayer(fcn8_lasagne.layers.Layer):
        pass

    fcn8_lasagne.layers.LateLayer = LateLayer
    try:
        from lasagne.layers import LateLayer as imported

        assert imported is LateLayer and lasagne.layers.LateLayer is LateLayer
    finally:
        del fcn8_lasagne.layers.LateLayer


def test_other_fcn8_modules_are_not_lasagne_modules(installed):
    with pytest.raises(ImportError, match="does not provide lasagne.cli"):
        import lasagne.cli  # noqa: F401
    import lasagne

    with pytest.raises(AttributeError, match="does not provide lasagne.training"):
        lasagne.training  # noqa: B018


def test_dnn_layers_are_the_plain_layers(installed):
    from lasagne.layers.dnn import Conv2DDNNLayer, MaxPool2DDNNLayer, Pool2DDNNLayer

    assert Conv2DDNNLayer is fcn8_lasagne.layers.Conv2DLayer
    assert MaxPool2DDNNLayer is fcn8_lasagne.layers.MaxPool2DLayer
    assert Pool2DDNNLayer is fcn8_lasagne.layers.Pool2DLayer


def test_theano_modules(installed):
    import pytensor
    import pytensor.tensor as pt
    import theano
    import theano.printing
    import theano.tensor as T
    import theano.tensor.extra_ops
    from theano import config
    from theano.sandbox.rng_mrg import MRG_RandomStreams  # noqa: F401
    from theano.tensor.nnet import abstract_conv  # noqa: F401
    from theano.tensor.shared_randomstreams import RandomStreams  # noqa: F401
    from theano.tensor.signal.pool import pool_2d

    import fcn8_lasagne.ops.pool

    assert config is pytensor.config and theano.config.floatX == pytensor.config.floatX
    assert theano.printing is pytensor.printing
    assert theano.tensor.extra_ops is pt.extra_ops
    assert T.set_subtensor is pt.set_subtensor and T.tensor4 is pt.tensor4
    assert theano.grad is pytensor.grad and theano.shared is not None
    assert pool_2d is fcn8_lasagne.ops.pool.pool_2d
    assert T.nnet is sys.modules["theano.tensor.nnet"]


def test_install_is_idempotent_and_uninstall_cleans_up():
    finder = legacy.install()
    assert legacy.install() is finder
    assert sys.meta_path.count(finder) == 1 and legacy.is_installed()
    import lasagne.layers.dnn  # noqa: F401
    import theano.tensor.nnet  # noqa: F401
    from dataset_loaders.images.polyps912 import Polyps912Dataset  # noqa: F401

    assert hasattr(fcn8_lasagne.layers, "dnn")  # set by the import system on the parent
    legacy.uninstall()
    assert _legacy_modules() == []
    assert not legacy.is_installed() and finder not in sys.meta_path
    assert not hasattr(fcn8_lasagne.layers, "dnn")
    assert hasattr(fcn8_lasagne.layers, "conv")  # genuine submodules stay
    with pytest.raises(ImportError):
        import lasagne  # noqa: F401
    legacy.uninstall()  # a second call is harmless


def test_bool_of_variables_follows_theano_only_while_installed():
    import pytensor.tensor as pt

    x = pt.vector()
    with pytest.raises(TypeError):
        bool(x)
    legacy.install()
    try:
        assert bool(x) and any(pt.eq(x, 1).nonzero())
        with pytest.raises(TypeError, match="do not support boolean"):
            bool(x < 1)
    finally:
        legacy.uninstall()
    with pytest.raises(TypeError):
        bool(x.nonzero()[0])


@pytest.mark.parametrize("statement, error, name", [
    ("import theano.tensor as T; T.nnet.conv3d", AttributeError, "theano.tensor.nnet.conv3d"),
    ("import theano; theano.gof", AttributeError, "theano.gof"),
    ("import theano.sandbox.cuda", ImportError, "theano.sandbox.cuda"),
    ("from theano.tensor.signal import downsample", ImportError,
     "theano.tensor.signal.downsample"),
    ("import theano.tensor as T; T.no_such_name", AttributeError, "theano.tensor.no_such_name"),
    ("from theano.sandbox.rng_mrg import MRG_RandomStreams as M; M().choice",
     AttributeError, "theano.sandbox.rng_mrg.MRG_RandomStreams.choice"),
])
def test_missing_theano_names_say_so(installed, statement, error, name):
    with pytest.raises(error) as caught:
        exec(statement, {})
    message = str(caught.value)
    assert f"fcn8_lasagne.legacy does not provide {name} " in message
    assert "report it" in message and "Replace it" in message


def test_unsupported_conv_arguments_say_so(installed):
    import pytensor.tensor as pt
    import theano.tensor as T

    with pytest.raises(NotImplementedError, match="does not provide .*unshared"):
        T.nnet.conv2d(pt.tensor4(), pt.tensor4(), unshared=True)


def test_dilated_and_grouped_conv_pass_through(installed):
    import numpy as np
    import pytensor
    import pytensor.tensor as pt
    import theano.tensor as T

    from tests.reference import conv as conv_reference

    x, w = pt.tensor4(), pt.tensor4()
    out = T.nnet.conv2d(x, w, border_mode=(2, 1), filter_dilation=(2, 1), num_groups=2)
    f = pytensor.function([x, w], out)
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((1, 4, 9, 8)).astype(pytensor.config.floatX)
    wv = rng.standard_normal((6, 2, 3, 3)).astype(pytensor.config.floatX)
    expected = conv_reference.conv(xv, wv, stride=(1, 1), pad=(2, 1), dilation=(2, 1),
                                   groups=2, flip=True)
    np.testing.assert_allclose(f(xv, wv), expected, rtol=1e-4, atol=1e-4)
