"""``python -m fcn8_lasagne.legacy [options] SCRIPT.py [args]``: run a Lasagne/Theano script.

The script runs as ``python SCRIPT.py [args]`` would run it (``__name__ == '__main__'``,
``sys.argv`` the script and its arguments, its folder first on ``sys.path``), with
:func:`fcn8_lasagne.legacy.install` in effect. ``THEANO_FLAGS`` (``floatX``, ``device``,
``mode``) is honoured; ``--device`` overrides its device and ``--data-dir`` sets
``FCN8_LEGACY_DATA_DIR`` for the ``dataset_loaders`` classes.
"""

import argparse
import os
import runpy
import sys

from . import apply_theano_flags, install, set_device
from .dataset_loaders import DATA_DIR_ENV


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m fcn8_lasagne.legacy",
        description="Run an unchanged Lasagne/Theano script on fcn8_lasagne and PyTensor.")
    parser.add_argument("--device", choices=("cpu", "jax", "gpu"),
                        help="where theano.function compiles for (default: THEANO_FLAGS "
                             "device, else cpu)")
    parser.add_argument("--data-dir", help=f"the dataset_loaders data folder (sets "
                                           f"{DATA_DIR_ENV})")
    parser.add_argument("script", help="the script to run (a .py file)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    return parser


def main(argv=None):
    """Run the script named in ``argv`` (default ``sys.argv[1:]``); returns its globals."""
    options = _parser().parse_args(argv)
    script = os.path.abspath(options.script)
    if not os.path.isfile(script):
        raise SystemExit(f"python -m fcn8_lasagne.legacy: no such script: {options.script}")
    if options.data_dir is not None:
        os.environ[DATA_DIR_ENV] = os.path.abspath(options.data_dir)
    apply_theano_flags(os.environ.get("THEANO_FLAGS"))
    if options.device is not None:
        set_device(options.device)
    install()
    sys.argv = [options.script, *options.args]
    sys.path.insert(0, os.path.dirname(script))
    return runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
