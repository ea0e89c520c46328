"""The error a script gets for a Theano or Lasagne name the runner does not provide."""

__all__ = ["not_provided_message", "NotProvided", "shim_getattr"]

_ADVICE = (
    "Replace it in the script with its PyTensor (or fcn8_lasagne) equivalent, or report it "
    "to the fcn8_lasagne maintainers (an issue naming the script line and the name) so "
    "that the runner can provide it."
)


def not_provided_message(qualified_name, kind="name"):
    """The message of the error raised for ``qualified_name`` (e.g. ``'theano.tensor.xyz'``)."""
    return f"fcn8_lasagne.legacy does not provide {qualified_name} ({kind}). {_ADVICE}"


class NotProvided(AttributeError):
    """An attribute of a shim module that the runner does not provide."""


def shim_getattr(module_globals, legacy_name, fallback=None, renamed=None):
    """Build the ``__getattr__`` of a shim module.

    Parameters
    ----------
    module_globals : dict
        The shim's ``globals()``.
    legacy_name : str
        The Theano/Lasagne name of the shim (``'theano.tensor'``).
    fallback : callable, optional
        Returns the module whose attributes of the same name stand for the shim's
        (``pytensor.tensor`` for ``theano.tensor``); called lazily.
    renamed : dict, optional
        Theano name -> callable returning the value (names that differ in PyTensor).

    Returns
    -------
    callable
    """
    renamed = dict(renamed or {})
    module_globals["__legacy_name__"] = legacy_name

    def __getattr__(name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name in renamed:
            value = renamed[name]()
            module_globals[name] = value
            return value
        if fallback is not None:
            source = fallback()
            try:
                return getattr(source, name)
            except AttributeError:
                pass
        raise NotProvided(not_provided_message(f"{legacy_name}.{name}"))

    return __getattr__
