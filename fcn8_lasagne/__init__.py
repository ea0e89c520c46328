"""fcn8_lasagne: the deeplearning.net FCN-8 tutorial, faithful to Lasagne, on PyTensor.

Importing the package sets two PyTensor defaults unless the user chose them through
``PYTENSOR_FLAGS`` (see ``docs/faithfulness.md``):

* ``floatX=float32`` — the tutorial ran with ``THEANO_FLAGS=floatX=float32``; PyTensor's own
  default is ``float64``;
* ``mode=CVM`` — the C virtual machine, Theano's default backend. PyTensor 3's default,
  Numba, compiles large graphs slowly and runs this project's ops through object mode.
"""

import os

import pytensor

__version__ = "0.1.0"

_user_flags = os.environ.get("PYTENSOR_FLAGS", "")
if "floatX" not in _user_flags:
    pytensor.config.floatX = "float32"
if "mode" not in _user_flags:
    pytensor.config.mode = "CVM"
