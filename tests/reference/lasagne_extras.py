"""NumPy references for Lasagne's smaller layers, losses and updates (embedding, NIN, LRN,
standardisation, rectifiers, Huber loss, AMSGrad), written from their definitions with
explicit loops where that is clearer than vectorised code.
"""

import numpy as np


def numeric_gradient(f, x, eps=1e-6):
    """Central finite differences of the scalar ``f()`` with respect to the array ``x``,
    which ``f`` reads (it is perturbed in place and restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = f()
        x[index] = original - eps
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def embedding(indices, W):
    """Row ``W[i]`` for every index ``i`` (output shape ``indices.shape + (W.shape[1],)``)."""
    out = np.zeros(indices.shape + (W.shape[1],), dtype=W.dtype)
    for position in np.ndindex(indices.shape):
        out[position] = W[indices[position]]
    return out


def nin(x, W, b=None, nonlinearity=lambda v: np.maximum(v, 0)):
    """A dense layer over axis 1 at every trailing position: ``out[n, u, ...] = sum_c
    x[n, c, ...] W[c, u] + b``."""
    batch, channels = x.shape[:2]
    units = W.shape[1]
    out = np.zeros((batch, units) + x.shape[2:], dtype=np.float64)
    for n in range(batch):
        for u in range(units):
            for c in range(channels):
                out[n, u] += x[n, c] * W[c, u]
            if b is not None:  # b[u]: a scalar, or (untied) one value per position
                out[n, u] += b[u]
    return nonlinearity(out)


def local_response_normalization(x, alpha=1e-4, k=2, beta=0.75, n=5):
    """``x_i / (k + alpha * sum_{|j - i| <= n // 2} x_j ** 2) ** beta`` over channels."""
    channels = x.shape[1]
    half = n // 2
    out = np.empty_like(x, dtype=np.float64)
    for i in range(channels):
        total = np.zeros(x.shape[:1] + x.shape[2:], dtype=np.float64)
        for j in range(i - half, i + half + 1):
            if 0 <= j < channels:
                total += x[:, j].astype(np.float64) ** 2
        out[:, i] = x[:, i] / (k + alpha * total) ** beta
    return out


def standardize_over(x, axes, epsilon=1e-4):
    """``(x - mean) / sqrt(var + epsilon)``, biased statistics over ``axes``."""
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon)


def leaky(x, slope):
    """``max(x, 0) + slope * min(x, 0)`` (``slope`` broadcast against ``x``)."""
    return np.maximum(x, 0) + slope * np.minimum(x, 0)


def huber(predictions, targets, delta=1.0):
    """Element-wise Huber loss."""
    diff = np.abs(predictions.astype(np.float64) - targets)
    return np.where(diff <= delta, 0.5 * diff ** 2, delta * (diff - delta / 2))


def amsgrad(values, gradient, steps, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
    """``steps`` AMSGrad updates of the arrays ``values`` (``gradient(values)`` gives their
    gradients); returns the values and the three moment lists."""
    values = [v.astype(np.float64) for v in values]
    m = [np.zeros_like(v) for v in values]
    v2 = [np.zeros_like(v) for v in values]
    v_hat = [np.zeros_like(v) for v in values]
    for t in range(1, steps + 1):
        a_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        for i, g in enumerate(gradient(values)):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v2[i] = beta2 * v2[i] + (1 - beta2) * g ** 2
            v_hat[i] = np.maximum(v_hat[i], v2[i])
            values[i] = values[i] - a_t * m[i] / (np.sqrt(v_hat[i]) + eps)
    return values, m, v2, v_hat
