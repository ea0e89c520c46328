"""The tutorial's 1-D FCN as a NumPy forward pass (float64), written from its definition.

Parameters are looked up by the package's names (``bn0.beta``, ``conv0.W``, ``conv0.b``,
..., ``final_conv.W``). 1-D true convolutions (kernel reversed) over a zero-padded profile
('same': ``k // 2`` on each side), batch normalisation over (samples, positions), ReLU and a
row-wise softmax over the classes.
"""

import numpy as np

from .unet import batch_norm, softmax_rows

__all__ = ["conv1d_same", "fcn1d_forward"]


def conv1d_same(x, w, b):
    """``y[n, f, t] = b[f] + sum_{c, s} x_pad[n, c, t + s] * w[f, c, k - 1 - s]``."""
    k = w.shape[2]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p)))
    length = x.shape[2]
    out = np.zeros((x.shape[0], w.shape[0], length)) + b[None, :, None]
    for s in range(k):
        out += np.einsum("nct,fc->nft", xp[:, :, s:s + length], w[:, :, k - 1 - s])
    return out


def fcn1d_forward(x, params, depth, block="bn_relu_conv", deterministic=False):
    """The 1-D FCN on ``x`` (N, C, L).

    Returns
    -------
    dict
        ``'final_conv'`` (N, K, L) after its ReLU, ``'last_layer'`` (N L, K) and
        ``'probs_dimshuffle'`` (N, K, L).
    """

    def bn(name, h):
        stats = ((params[f"{name}.mean"], params[f"{name}.inv_std"]) if deterministic
                 else (None, None))
        return batch_norm(h, params[f"{name}.beta"], params[f"{name}.gamma"], *stats)

    h = np.asarray(x, dtype=np.float64)
    for d in range(depth):
        conv = lambda v: conv1d_same(v, params[f"conv{d}.W"], params[f"conv{d}.b"])  # noqa: E731
        if block == "bn_relu_conv":
            h = conv(np.maximum(bn(f"bn{d}", h), 0))
        else:
            h = np.maximum(bn(f"bn{d}", conv(h)), 0)
    final = np.maximum(conv1d_same(h, params["final_conv.W"], params["final_conv.b"]), 0)
    probs = softmax_rows(final.transpose(0, 2, 1).reshape(-1, final.shape[1]))
    return {
        "final_conv": final,
        "last_layer": probs,
        "probs_dimshuffle": probs.reshape(final.shape[0], final.shape[2], -1).transpose(0, 2, 1),
    }
