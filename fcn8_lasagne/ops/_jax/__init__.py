"""JAX translations of every ``Op`` of :mod:`fcn8_lasagne.ops`, one module per op family.

As PyTensor's ``link/jax/dispatch``: the ``Op`` classes live with their CPU code, and each
module here registers ``jax_funcify`` translations for one family. :mod:`.._backend` imports
this package the moment PyTensor loads its own JAX dispatch, so neither JAX nor PyTensor's
JAX backend is imported until a function is compiled for JAX.
"""

from . import conv, crop, fill, pool, reduce, resize, upscale  # noqa: F401  (registrations)
from . import recurrent  # noqa: F401  (LSTMSequence, LSTMSequenceGrad)
