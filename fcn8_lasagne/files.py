"""Atomic file writes: a file is either its old self or completely new, never half-written.

Every file the package saves (weights, training state, error histories, configuration,
results, label maps) goes through :func:`atomic_write`.
"""

import errno
import os
import tempfile

__all__ = ["atomic_write", "file_mode"]


def file_mode():
    """The mode ``open(path, 'w')`` gives a new file: ``0o666`` less the process umask.

    Read from ``/proc/self/status`` where the kernel reports it (no race); otherwise set and
    restored at once with ``os.umask``, which is not thread-safe (another thread creating a
    file in that instant would get umask 0).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _naming(error, path):
    """``error`` (an OSError) again, with ``path`` in its message instead of a temporary."""
    if error.errno is None:
        return type(error)(f"cannot write {path}: {error}")
    try:
        return type(error)(error.errno, f"cannot write {path}: {error.strerror}")
    except TypeError:  # an OSError subclass with another constructor
        return OSError(error.errno, f"cannot write {path}: {error.strerror}")


def atomic_write(path, write, suffix=""):
    """Write ``path`` by ``write(stream)`` on a temporary file, then rename it over ``path``.

    The temporary file (``.tmp-*<suffix>`` in the same folder) is flushed to disk before the
    rename, so an existing ``path`` stays intact if anything fails, and it is removed on
    failure. The new file gets the mode a plain ``open()`` would give it (``0o666`` less the
    umask).

    Parameters
    ----------
    path : str or path-like
    write : callable
        ``write(stream)`` writes the content to a binary stream.
    suffix : str
        Of the temporary file's name (e.g. ``'.npz'``).

    Raises
    ------
    OSError
        The folder not writable, ``path`` a folder, a full disk, …: raised again naming
        ``path``, with the original chained.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a folder")
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), file_mode())
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _naming(error, path) from error
        raise
