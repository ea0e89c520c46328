"""``python -m fcn8_lasagne.legacy SCRIPT.py`` on small scripts written by the tests."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from tests.legacy.test_dataset_loaders import write_polyps

REPOSITORY = Path(__file__).resolve().parents[2]

# What train_fcn8.py does, on a network of one 1x1 convolution: Lasagne layers, the
# tutorial's masked cross-entropy, L2 weight decay, Adam, theano.function, one step.
TRAINING_SCRIPT = '''
    from __future__ import absolute_import, print_function, division
    import sys

    import numpy as np
    import theano
    import theano.tensor as T
    from theano import config
    import lasagne
    from lasagne.layers import InputLayer, DimshuffleLayer, ReshapeLayer
    from lasagne.layers import Conv2DLayer as ConvLayer
    from lasagne.nonlinearities import softmax, linear
    from lasagne.regularization import regularize_network_params

    from dataset_loaders.images.polyps912 import Polyps912Dataset
    from helper import masked_crossentropy


    def main():
        np.random.seed(0)
        print("argv", sys.argv[1:], "floatX", config.floatX)
        input_var = T.tensor4('input_var')
        target_var = T.ivector('target_var')
        train_iter = Polyps912Dataset(which_set='train', batch_size=2, seq_per_subset=0,
                                      seq_length=0, data_augm_kwargs={'crop_size': (4, 4)},
                                      return_one_hot=False, return_01c=False, overlap=0,
                                      use_threads=False, shuffle_at_each_epoch=True,
                                      return_list=True, return_0_255=False)
        n_classes = train_iter.non_void_nclasses
        void_labels = train_iter.void_labels
        net = InputLayer((None, train_iter.data_shape[0], None, None), input_var)
        net = ConvLayer(net, n_classes, 1, nonlinearity=linear, flip_filters=False)
        net = DimshuffleLayer(net, (0, 2, 3, 1))
        size = lasagne.layers.get_output(net).shape
        net = ReshapeLayer(net, (T.prod(size[0:3]), size[3]))
        net = lasagne.layers.NonlinearityLayer(net, nonlinearity=softmax)
        prediction = lasagne.layers.get_output(net)
        loss = masked_crossentropy(prediction, target_var, void_labels)
        loss += 1e-4 * regularize_network_params(net, lasagne.regularization.l2)
        params = lasagne.layers.get_all_params(net, trainable=True)
        updates = lasagne.updates.adam(loss, params, learning_rate=0.01)
        train_fn = theano.function([input_var, target_var], loss, updates=updates)
        print("function", type(train_fn).__name__)
        X, L = train_iter.next()
        L = np.reshape(L, np.prod(L.shape))
        W, b = [p.get_value() for p in params]
        cost = train_fn(X, L)
        print("cost %f" % cost)
        np.savez(sys.argv[1], X=X, L=L, W=W, b=b, cost=cost,
                 W_after=params[0].get_value())


    if __name__ == "__main__":
        main()
'''

HELPER_MODULE = '''
    import theano.tensor as T
    from theano import config


    def masked_crossentropy(y_pred, y_true, void_labels):
        y_pred = T.clip(y_pred, 10e-7, 1.0 - 10e-7)
        mask = T.ones_like(y_true, dtype=config.floatX)
        for el in void_labels:
            indices = T.eq(y_true, el).nonzero()
            if any(indices):
                mask = T.set_subtensor(mask[indices], 0.)
        y_true_tmp = (y_true * mask).astype('int32')
        loss = T.nnet.categorical_crossentropy(y_pred, y_true_tmp)
        loss *= mask
        return T.sum(loss) / T.sum(mask)
'''


def _run(*args, cwd, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "fcn8_lasagne.legacy", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_training_script_runs_unchanged(tmp_path):
    data = write_polyps(tmp_path / "data")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "train_tiny.py").write_text(textwrap.dedent(TRAINING_SCRIPT))
    (scripts / "helper.py").write_text(textwrap.dedent(HELPER_MODULE))  # found beside it
    result = _run(scripts / "train_tiny.py", str(tmp_path / "step.npz"), "-flag", cwd=tmp_path,
                  env_extra={"FCN8_LEGACY_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"argv ['{tmp_path / 'step.npz'}', '-flag'] floatX float32"
    assert lines[1] == "function HostFunction"  # fcn8_lasagne.compile.function
    step = np.load(tmp_path / "step.npz")
    # the loss against NumPy: 1x1 convolution, softmax, clipped and masked cross-entropy
    X, L, W, b = (step[key].astype(np.float64) for key in ("X", "L", "W", "b"))
    logits = np.einsum("bchw,fc->bhwf", X, W[:, :, 0, 0]).reshape(-1, 2) + b
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = np.clip(probs / probs.sum(axis=1, keepdims=True), 10e-7, 1 - 10e-7)
    mask = (L != 2).astype(np.float64)
    labels = (L * mask).astype(int)
    expected = -(np.log(probs[np.arange(len(labels)), labels]) * mask).sum() / mask.sum()
    expected += 1e-4 * (W ** 2).sum()
    assert L.shape == (2 * 4 * 4,) and 0 < mask.sum() < len(mask)
    np.testing.assert_allclose(float(step["cost"]), expected, rtol=1e-5)
    assert f"cost {expected:.6f}"[:10] == lines[2][:10]
    assert not np.allclose(step["W_after"], step["W"])  # the update was applied


def test_a_missing_theano_name_stops_the_script_with_the_reason(tmp_path):
    script = tmp_path / "uses_cuda.py"
    script.write_text("import theano\nimport theano.sandbox.cuda\n")
    result = _run(script, cwd=tmp_path)
    assert result.returncode == 1
    assert "fcn8_lasagne.legacy does not provide theano.sandbox.cuda" in result.stderr


def test_runner_refuses_a_missing_script(tmp_path):
    result = _run(tmp_path / "absent.py", cwd=tmp_path)
    assert result.returncode != 0 and "no such script" in result.stderr


def test_runner_options_set_the_data_folder_and_device(tmp_path):
    data = write_polyps(tmp_path / "data")
    script = tmp_path / "options.py"
    script.write_text(textwrap.dedent('''
        import os
        import fcn8_lasagne.legacy
        from dataset_loaders.images.polyps912 import Polyps912Dataset
        print(__name__, fcn8_lasagne.legacy.get_device(), os.environ["FCN8_LEGACY_DATA_DIR"],
              Polyps912Dataset(which_set="test").nbatches)
    '''))
    env = {"THEANO_FLAGS": "device=cuda,floatX=float32"}
    result = _run("--device", "jax", "--data-dir", str(data), script, cwd=tmp_path,
                  env_extra=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["__main__", "jax", str(data), "2"]
