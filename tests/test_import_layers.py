"""Imports flow one way: ops <- layers <- models <- weights/training/inference <- cli.

Every module of the package is parsed with ``ast`` (nothing is imported), and every import it
makes of the package — at the top, inside functions (lazy imports count), relative or absolute,
or through ``importlib.import_module("fcn8_lasagne....")`` — is checked against the layer
rules below. A module outside a package must not import that package's private
(``_``-prefixed) modules either: ``cli`` asks ``fcn8_lasagne.ops`` for ``coretype_advice``,
not ``ops._blas``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fcn8_lasagne"

#: Top-level module or sub-package -> layer. Anything not listed is an application module
#: (the layer of weights / training / inference): it may use everything but the command line.
LAYER_OF = {
    "ops": "ops",
    # below the layers, beside the ops: small shared helpers
    "utils": "base", "random": "base", "files": "base", "init": "base",
    "nonlinearities": "base", "compile": "base", "theano_extensions": "base",
    "": "base",  # fcn8_lasagne/__init__.py
    "layers": "layers", "objectives": "layers", "updates": "layers",
    "regularization": "layers", "metrics": "layers",
    "data": "data",
    "models": "models",
    "weights": "app", "training": "app", "inference": "app", "compare": "app",
    "cli": "cli", "legacy": "cli",
}

#: The layers each layer may import (its own included).
ALLOWED = {
    "ops": {"ops"},
    "base": {"ops", "base"},
    "layers": {"ops", "base", "layers"},
    "data": {"base", "data"},
    "models": {"ops", "base", "layers", "models"},
    "app": {"ops", "base", "layers", "data", "models", "app"},
    "cli": {"ops", "base", "layers", "data", "models", "app", "cli"},
}


def layer_of(module):
    """The layer of a dotted module name below ``fcn8_lasagne``."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return LAYER_OF.get(top, "app")


def module_name(path, root=PACKAGE):
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_imports(path, root=PACKAGE):
    """``(line, target)`` for every import of ``fcn8_lasagne`` in the file, where ``target``
    is the dotted module imported (``from X import name`` also yields ``X.name`` when
    ``name`` is private or ``X`` is the package itself, as it may be a module)."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            for alias in node.names:
                if node.module is None or alias.name.startswith("_") or target == "fcn8_lasagne":
                    found.append((node.lineno, f"{target}.{alias.name}"))
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return [(line, target) for line, target in found
            if target == "fcn8_lasagne" or target.startswith("fcn8_lasagne.")]


def violations(path, root=PACKAGE):
    """Messages for the wrong-way and private imports of one file."""
    module = module_name(path, root)
    own = layer_of(module)
    messages = []
    for line, target in package_imports(path, root):
        if target == "fcn8_lasagne":
            continue
        if layer_of(target) not in ALLOWED[own]:
            messages.append(f"{module} ({own}) imports {target} ({layer_of(target)}) at "
                            f"{path.name}:{line}")
        parts = target.split(".")
        for depth, part in enumerate(parts[2:], start=2):
            owner = ".".join(parts[:depth])  # the package that holds the private module
            location = root.parent.joinpath(*parts[:depth + 1])
            is_module = location.with_suffix(".py").exists() or location.is_dir()
            if part.startswith("_") and not part.startswith("__") and is_module and not (
                    module == owner or module.startswith(owner + ".")):
                messages.append(f"{module} imports the private {target} of {owner} at "
                                f"{path.name}:{line}")
                break
    return messages


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_parsed():
    names = {module_name(path) for path in MODULES}
    assert {"fcn8_lasagne.ops", "fcn8_lasagne.layers", "fcn8_lasagne.models.fcn",
            "fcn8_lasagne.weights.convert", "fcn8_lasagne.cli"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_imports_flow_one_way(path):
    assert violations(path) == []


def _write(tmp_path, relative, text):
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("relative, source, expected", [
    # lazy, relative: models must not reach weights, even inside a function
    ("models/fcn.py", "def f():\n    from ..weights.npz import load_npz\n",
     "fcn8_lasagne.models.fcn (models) imports fcn8_lasagne.weights.npz (app)"),
    ("models/fcn.py", "from .. import weights\n", "imports fcn8_lasagne.weights (app)"),
    ("ops/conv.py", "import fcn8_lasagne.layers.base\n", "(ops) imports fcn8_lasagne.layers"),
    ("layers/conv.py", "def g():\n    from fcn8_lasagne.models import buildFCN8\n",
     "(layers) imports fcn8_lasagne.models"),
    ("data/base.py", "from ..layers import InputLayer\n", "(data) imports fcn8_lasagne.layers"),
    ("weights/npz.py", "from ..cli import main\n", "(app) imports fcn8_lasagne.cli (cli)"),
    ("models/fcn.py", "import importlib\nimportlib.import_module('fcn8_lasagne.training')\n",
     "imports fcn8_lasagne.training (app)"),
    ("cli.py", "from .ops._blas import coretype_advice\n",
     "imports the private fcn8_lasagne.ops._blas of fcn8_lasagne.ops"),
    ("cli.py", "from .ops import _blas\n", "the private fcn8_lasagne.ops._blas"),
])
def test_a_wrong_way_import_is_found(tmp_path, relative, source, expected):
    root = tmp_path / "fcn8_lasagne"
    _write(root, "ops/_blas.py", "")  # the private module the last cases import
    found = violations(_write(root, relative, source), root)
    assert any(expected in message for message in found), found


def test_the_right_way_passes(tmp_path):
    root = tmp_path / "fcn8_lasagne"
    path = _write(root, "weights/convert.py",
                  "from .. import models\nfrom ..layers import InputLayer\n"
                  "from .npz import save_npz\nfrom ._private import x\n"
                  "from ..utils import _private_name\n"
                  "def f():\n    from ..ops import coretype_advice\n")
    assert violations(path, root) == []
