#!/usr/bin/env python
"""Dump the named layer outputs of the ORIGINAL tutorial FCN-8 (Theano 1.0.5 + Lasagne).

For users who still have the original stack: Theano 1.0.5, Lasagne master (0.2.dev1, the
version with ``Deconv2DLayer``) and the tutorial's ``fcn8.py`` (lisa-lab/DeepLearningTutorials,
``code/fcn_2D_segm``). The script builds the tutorial's ``buildFCN8`` with a Lasagne weight
file, runs one image through it at test time (dropout off) and writes every named layer's
output to one ``.npz`` file — the format ``fcn8 dump-activations`` writes:

* one array per layer, keyed by the tutorial's layer name (``conv1_1`` … ``probs_dimshuffle``,
  the keys of its ``net`` dict without ``input`` and ``input_tmp``);
* ``input``: the (1, 3, H, W) float32 batch that was fed.

``notebooks/02_compare_layer_outputs.ipynb`` compares such a file, layer by layer, with this
project run on the same ``input`` and the same weights::

    # on the machine with the original stack
    THEANO_FLAGS=floatX=float32,device=cpu python dump_theano_activations.py \\
        --fcn8 /path/to/DeepLearningTutorials/code/fcn_2D_segm \\
        model.npz image.png theano_activations.npz --size 224 224

    # here
    FCN8_WEIGHTS=model.npz FCN8_OTHER_ACTIVATIONS=theano_activations.npz \\
        jupyter nbconvert --to notebook --execute notebooks/02_compare_layer_outputs.ipynb

``IMAGE`` is an image file (read as RGB in [0, 1], optionally resized with Pillow's bilinear
filter, exactly as ``fcn8 dump-activations`` reads it) or a ``.npz`` holding an ``input``
array — for example a file written by ``fcn8 dump-activations`` — which is fed unchanged, so
both implementations see bit-identical pixels.

The run is deterministic: no random numbers are drawn (dropout is off and every parameter
comes from the weight file). The script needs only NumPy, Pillow, Theano and Lasagne; it
imports nothing of ``fcn8_lasagne`` and is not run by the project's tests (Theano 1.0.5 does
not install next to current NumPy).
"""

import argparse
import os
import sys

import numpy as np

#: The tutorial's layer names with an output of their own, in the order of its ``net`` dict.
FCN8_LAYERS = (
    "conv1_1", "conv1_2", "pool1",
    "conv2_1", "conv2_2", "pool2",
    "conv3_1", "conv3_2", "conv3_3", "pool3",
    "conv4_1", "conv4_2", "conv4_3", "pool4",
    "conv5_1", "conv5_2", "conv5_3", "pool5",
    "fc6", "fc6_dropout", "fc7", "fc7_dropout", "score_fr",
    "score2", "score_pool4", "score_fused", "score4", "score_pool3", "score_final",
    "upsample", "score", "final_dimshuffle", "final_reshape", "probs", "probs_reshape",
    "probs_dimshuffle",
)


def parse_arguments(argv=None):
    """The command line: weights, image, output file, where ``fcn8.py`` lives, options."""
    parser = argparse.ArgumentParser(
        description="Write the named layer outputs of the original tutorial's FCN-8 "
                    "(Theano + Lasagne) for one image, in the format of "
                    "'fcn8 dump-activations'.")
    parser.add_argument("weights", help="Lasagne .npz weight file (arr_0 ... arr_41)")
    parser.add_argument("image", help="image file, or a .npz holding an 'input' array")
    parser.add_argument("out", help="output .npz")
    parser.add_argument("--fcn8", required=True, metavar="PATH",
                        help="the tutorial's fcn8.py, or the folder holding it "
                             "(code/fcn_2D_segm, with model_helpers.py)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="resize the image to H x W (bilinear); not for a .npz input")
    parser.add_argument("--layers", nargs="+", default=None, choices=FCN8_LAYERS,
                        metavar="NAME", help="only these layers (default: all)")
    return parser.parse_args(argv)


def read_input(path, size=None):
    """The (1, 3, H, W) float32 batch to feed.

    Parameters
    ----------
    path : str
        An image file, read with Pillow as RGB and scaled to [0, 1], or a ``.npz`` file
        whose ``input`` array is returned unchanged (as float32).
    size : (int, int) or None
        (H, W) to resize an image file to, with Pillow's bilinear filter.

    Returns
    -------
    numpy.ndarray
    """
    if path.lower().endswith(".npz"):
        if size is not None:
            raise ValueError("--size resizes image files only; a .npz 'input' is fed as stored")
        with np.load(path, allow_pickle=False) as archive:
            if "input" not in archive.files:
                raise ValueError(f"{path}: no 'input' array (found {sorted(archive.files)})")
            batch = archive["input"].astype(np.float32)
        if batch.ndim != 4 or batch.shape[:2] != (1, 3):
            raise ValueError(f"{path}: 'input' should be (1, 3, H, W), got {batch.shape}")
        return batch
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    pixels = np.asarray(image, dtype=np.uint8)
    if size is not None:
        resized = Image.fromarray(pixels).resize((size[1], size[0]), Image.BILINEAR)
        pixels = np.asarray(resized)
    return (pixels.astype(np.float32).transpose(2, 0, 1) / 255.0)[None]


def read_weights(path):
    """The ``arr_0 … arr_{n-1}`` arrays of a Lasagne weight file, in order."""
    with np.load(path, allow_pickle=False) as archive:
        return [archive[f"arr_{index}"] for index in range(len(archive.files))]


def import_original_stack(fcn8_path):
    """Import Theano, Lasagne and the tutorial's ``fcn8`` module.

    Returns
    -------
    theano, lasagne, fcn8 : module
    """
    if "floatX" not in os.environ.get("THEANO_FLAGS", ""):
        # the tutorial ran with floatX=float32; set before Theano is imported
        flags = os.environ.get("THEANO_FLAGS", "")
        os.environ["THEANO_FLAGS"] = ",".join(filter(None, [flags, "floatX=float32"]))
    try:
        import lasagne
        import theano
    except ImportError as error:
        raise SystemExit(
            f"dump_theano_activations.py needs the original stack: Theano 1.0.5 and Lasagne "
            f"master (pip install Theano==1.0.5 "
            f"https://github.com/Lasagne/Lasagne/archive/master.zip, with numpy<1.24): "
            f"{error}") from None
    folder = fcn8_path if os.path.isdir(fcn8_path) else os.path.dirname(fcn8_path)
    sys.path.insert(0, os.path.abspath(folder))
    try:
        import fcn8
    except ImportError as error:
        raise SystemExit(f"cannot import the tutorial's fcn8.py from {folder}: {error}") from None
    return theano, lasagne, fcn8


def dump(weights_path, batch, out_path, fcn8_path, layers=None):
    """Run the original FCN-8 on ``batch`` and write the named outputs to ``out_path``.

    Returns
    -------
    dict
        Layer name → output, plus ``input``.
    """
    theano, lasagne, fcn8 = import_original_stack(fcn8_path)
    names = list(layers or FCN8_LAYERS)
    values = read_weights(weights_path)
    n_classes = int(values[-1].shape[0])  # the last array is upsample.b
    input_var = theano.tensor.tensor4("input_var")
    # load_weights=False: the tutorial's last version did not load here (it only applied
    # the temperature); the weights are set below, exactly as its train_fcn8.py saved them
    built = fcn8.buildFCN8(3, input_var, n_classes=n_classes, load_weights=False,
                           layer=list(FCN8_LAYERS))
    by_name = dict(zip(FCN8_LAYERS, built))
    lasagne.layers.set_all_param_values(by_name["probs"], values)
    outputs = lasagne.layers.get_output([by_name[name] for name in names], deterministic=True)
    function = theano.function([input_var], outputs)
    arrays = dict(zip(names, (np.asarray(value) for value in function(batch))))
    arrays["input"] = batch
    temporary = out_path + ".tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, out_path)
    return arrays


def main(argv=None):
    """Entry point: parse, read the input, dump, print one line per array."""
    arguments = parse_arguments(argv)
    batch = read_input(arguments.image, arguments.size)
    arrays = dump(arguments.weights, batch, arguments.out, arguments.fcn8, arguments.layers)
    for name, value in arrays.items():
        print(f"{name:<18}{'x'.join(str(length) for length in value.shape)}")
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
