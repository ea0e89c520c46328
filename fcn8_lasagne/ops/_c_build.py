"""Build and load the compiled CPU kernels (C++ sources held by the kernel modules).

The kernels of :mod:`._conv_c` and :mod:`._winograd_c` are C++ sources compiled once per
source, compiler, flags and CPU with PyTensor's C++ compiler (``pytensor.config.cxx``) into
``<pytensor compiledir>/fcn8_lasagne`` and loaded with ``ctypes`` (which releases the GIL, so
the worker threads of :mod:`._threads` run calls side by side). Without a compiler (``cxx``
empty), when compiling or loading fails, or with the environment variable
``FCN8_LASAGNE_C_KERNELS=0``, :func:`load_library` returns None (with a warning for a failure)
and the callers use their NumPy/BLAS kernels.
"""

import ctypes
import hashlib
import os
import subprocess
import tempfile
import warnings

__all__ = ["FLAGS", "compiled_kernels_enabled", "load_library"]

#: ``-march=native``: the kernels use the machine's vector width (AVX-512, AVX2 or SSE).
FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-fno-math-errno"]


def compiled_kernels_enabled():
    """False when the user turned the compiled kernels off (``FCN8_LASAGNE_C_KERNELS=0``)."""
    return os.environ.get("FCN8_LASAGNE_C_KERNELS", "1").strip().lower() not in (
        "0", "false", "no", "off")


def _compiler():
    """PyTensor's C++ compiler, or None (none configured, or the kernels turned off)."""
    if not compiled_kernels_enabled():
        return None
    try:
        import pytensor

        return pytensor.config.cxx or None
    except Exception:  # pragma: no cover - pytensor is a dependency
        return None


def _cpu_signature():
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    import platform

    return platform.processor()


def _cache_dir():
    try:
        import pytensor

        return os.path.join(pytensor.config.compiledir, "fcn8_lasagne")
    except Exception:  # pragma: no cover - pytensor is a dependency
        return os.path.join(tempfile.gettempdir(), "fcn8_lasagne-kernels")


def _build(cxx, name, source, what, fallback):
    """Path of the compiled library (built if missing), or None with a warning."""
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"fcn8_lasagne: no C++ compiler for the {what} ({error}); using "
                      f"{fallback}", RuntimeWarning)
        return None
    key = hashlib.sha256("\0".join([source, cxx, version, " ".join(FLAGS),
                                    _cpu_signature()]).encode()).hexdigest()[:20]
    directory = _cache_dir()
    path = os.path.join(directory, f"{name}_{key}.so")
    if os.path.exists(path):
        return path
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as work:
            source_path = os.path.join(work, f"{name}.cpp")
            with open(source_path, "w") as stream:
                stream.write(source)
            built = os.path.join(work, f"{name}.so")
            result = subprocess.run([cxx, *FLAGS, "-o", built, source_path],
                                    capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                raise RuntimeError((result.stderr.strip().splitlines() or ["no message"])[-1])
            os.replace(built, path)  # atomic: concurrent builders leave one whole file
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        warnings.warn(f"fcn8_lasagne: compiling the {what} with {cxx} into {directory} failed "
                      f"({error}); using {fallback}", RuntimeWarning)
        return None
    return path


def load_library(name, source, what, fallback):
    """Compile ``source`` (once per machine) and load it, or return None.

    Parameters
    ----------
    name : str
        File-name stem of the library in the cache directory.
    source : str
        The C++ source.
    what, fallback : str
        Words for the warnings ("the C convolution kernels", "the BLAS kernels").

    Returns
    -------
    ctypes.CDLL or None
    """
    cxx = _compiler()
    path = _build(cxx, name, source, what, fallback) if cxx else None
    if path is None:
        return None
    try:
        return ctypes.CDLL(path)
    except OSError as error:
        warnings.warn(f"fcn8_lasagne: loading the {what} failed ({error}); using {fallback}",
                      RuntimeWarning)
        return None
