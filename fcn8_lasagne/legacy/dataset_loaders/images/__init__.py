"""``dataset_loaders.images``: ``polyps912`` and ``isbi_em_stacks``."""

from ..._errors import shim_getattr
from . import isbi_em_stacks, polyps912  # noqa: F401  (the submodules)

__legacy_shim__ = True

__getattr__ = shim_getattr(globals(), "dataset_loaders.images")
