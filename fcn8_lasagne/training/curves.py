"""The learning-curve PNG of a training run: losses and per-class validation Jaccard.

:func:`write_learning_curves` draws the training and validation loss (left) and each
class's validation Jaccard (right) per epoch with matplotlib's Agg canvas (no display, no
pyplot state) and writes the PNG atomically, so that a reader never sees half a file.
"""

import io

import numpy as np

from ..files import atomic_write

__all__ = ["write_learning_curves", "render_learning_curves"]


def render_learning_curves(rows, n_classes, title=None, class_names=None):
    """The learning-curve figure as PNG bytes.

    Parameters
    ----------
    rows : sequence of sequence of float
        One row per epoch: training loss, validation loss, then the validation Jaccard of
        each class (rows may be shorter, e.g. from a run whose per-class values were not
        recorded: missing values are not drawn).
    n_classes : int
    title : str, optional
    class_names : sequence of str, optional
        Legend names of the classes (default 'class k').

    Returns
    -------
    bytes
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = 2 + n_classes
    table = np.full((len(rows), width), np.nan)
    for index, row in enumerate(rows):
        values = np.asarray(row, dtype=np.float64)[:width]
        table[index, :len(values)] = values
    epochs = np.arange(len(rows))
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    losses, jaccard = figure.subplots(1, 2)
    marker = "o" if len(rows) < 30 else None
    losses.plot(epochs, table[:, 0], marker=marker, label="training loss")
    losses.plot(epochs, table[:, 1], marker=marker, label="validation loss")
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss")
    losses.legend()
    names = list(class_names) if class_names is not None else [f"class {k}"
                                                               for k in range(n_classes)]
    for k in range(n_classes):
        jaccard.plot(epochs, table[:, 2 + k], marker=marker, label=names[k])
    jaccard.set_xlabel("epoch")
    jaccard.set_ylabel("validation Jaccard")
    jaccard.set_ylim(0, 1)
    jaccard.legend()
    for axes in (losses, jaccard):
        axes.grid(alpha=0.3)
        if len(rows) == 1:
            axes.set_xlim(-0.5, 0.5)
        axes.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_learning_curves(path, rows, n_classes, title=None, class_names=None):
    """Draw the learning curves (:func:`render_learning_curves`) and write them to
    ``path`` atomically."""
    png = render_learning_curves(rows, n_classes, title, class_names)
    atomic_write(path, lambda stream: stream.write(png))
