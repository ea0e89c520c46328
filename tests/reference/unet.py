"""The tutorial's U-Net as a NumPy forward pass (float64), written from its definition.

Parameters are looked up by the names the package gives them (``contr_1_1.W``,
``contr_1_1_bn.beta``, ...), so a test can hand over ``{p.name: p.get_value()}``. Every
operation is spelled out here: 3x3 true convolutions over a zero-padded input, batch
normalisation over (batch, rows, columns), ELU, 2x2 floor max-pooling, the 2x2 / stride-2
transposed convolution as a scatter, centre crops and a row-wise softmax.
"""

import numpy as np

__all__ = ["unet_forward", "elu", "batch_norm", "conv_same", "max_pool_2x2",
           "deconv_2x2_stride_2", "center_crop", "softmax_rows"]

BN_EPSILON = 1e-4


def elu(x):
    """``x`` where positive, ``exp(x) - 1`` elsewhere."""
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def conv_same(x, w):
    """True convolution (kernel rotated by 180 degrees) of NCHW ``x`` with ``w`` (F, C, k, k),
    zero padding ``k // 2``: the output has the input's size for odd ``k``."""
    k = w.shape[2]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    height, width = x.shape[2:]
    flipped = w[:, :, ::-1, ::-1]
    out = np.zeros((x.shape[0], w.shape[0], height, width))
    for u in range(k):
        for v in range(k):
            window = xp[:, :, u:u + height, v:v + width]           # (B, C, H, W)
            out += np.einsum("bchw,fc->bfhw", window, flipped[:, :, u, v])
    return out


def batch_norm(x, beta, gamma, mean=None, inv_std=None):
    """Per-channel normalisation; batch statistics (biased variance) unless ``mean`` and
    ``inv_std`` are given (the stored averages, ``deterministic=True``)."""
    axes = (0, 2, 3) if x.ndim == 4 else (0, 2)
    if mean is None:
        mean = x.mean(axis=axes)
        inv_std = 1.0 / np.sqrt(x.var(axis=axes) + BN_EPSILON)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.reshape(shape)) * (gamma * inv_std).reshape(shape)
            + beta.reshape(shape))


def max_pool_2x2(x):
    """Non-overlapping 2x2 maxima; a last odd row or column is dropped."""
    height, width = x.shape[2] // 2, x.shape[3] // 2
    x = x[:, :, :2 * height, :2 * width]
    return x.reshape(x.shape[0], x.shape[1], height, 2, width, 2).max(axis=(3, 5))


def deconv_2x2_stride_2(x, w):
    """Theano's gradient of a stride-2 true convolution with respect to its input, for the
    kernel ``w`` of shape (C_in, C_out, 2, 2): input pixel (i, j) writes
    ``x[:, c, i, j] * w[c, :, 1 - u, 1 - v]`` to output pixel (2 i + u, 2 j + v)."""
    batch, _, height, width = x.shape
    out = np.zeros((batch, w.shape[1], 2 * height, 2 * width))
    for u in range(2):
        for v in range(2):
            out[:, :, u::2, v::2] = np.einsum("bchw,co->bohw", x, w[:, :, 1 - u, 1 - v])
    return out


def center_crop(x, height, width):
    """The centre ``height`` x ``width`` window; offsets ``(size - target) // 2``."""
    top = (x.shape[2] - height) // 2
    left = (x.shape[3] - width) // 2
    return x[:, :, top:top + height, left:left + width]


def softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _bn(params, name, x, deterministic):
    stats = ((params[f"{name}_bn.mean"], params[f"{name}_bn.inv_std"]) if deterministic
             else (None, None))
    return batch_norm(x, params[f"{name}_bn.beta"], params[f"{name}_bn.gamma"], *stats)


def unet_forward(x, params, deterministic=False):
    """The U-Net (``pad='same'``, ELU) on NCHW ``x``.

    Parameters
    ----------
    x : ndarray (B, C, H, W)
    params : dict
        Name → array, the package's parameter names.
    deterministic : bool
        Use the stored batch-norm averages instead of the batch statistics.

    Returns
    -------
    outputs : dict
        ``'contr_1_2'``, ..., ``'expand_4_2'`` (after the nonlinearity), ``'concat1'`` ...,
        ``'output_segmentation'`` (B, K, H', W') and ``'output_flattened'`` (B H' W', K),
        the softmax over the pixels in (batch, row, column) order.
    """
    outputs = {}

    def conv_block(name, h):
        h = elu(_bn(params, name, conv_same(h, params[f"{name}.W"]), deterministic))
        outputs[name] = h
        return h

    h = np.asarray(x, dtype=np.float64)
    for block in range(1, 5):
        h = conv_block(f"contr_{block}_1", h)
        h = conv_block(f"contr_{block}_2", h)
        h = outputs[f"pool{block}"] = max_pool_2x2(h)
    h = conv_block("encode_1", h)
    h = conv_block("encode_2", h)
    for level in range(1, 5):
        name = f"upscale{level}"
        up = elu(_bn(params, name, deconv_2x2_stride_2(h, params[f"{name}.W"]), deterministic))
        outputs[name] = up
        skip = outputs[f"contr_{5 - level}_2"]
        height = min(up.shape[2], skip.shape[2])
        width = min(up.shape[3], skip.shape[3])
        h = np.concatenate([center_crop(up, height, width), center_crop(skip, height, width)],
                           axis=1)
        outputs[f"concat{level}"] = h
        h = conv_block(f"expand_{level}_1", h)
        h = conv_block(f"expand_{level}_2", h)
    scores = (np.einsum("bchw,kc->bkhw", h, params["output_segmentation.W"][:, :, 0, 0])
              + params["output_segmentation.b"][None, :, None, None])
    outputs["output_segmentation"] = scores
    rows = scores.transpose(0, 2, 3, 1).reshape(-1, scores.shape[1])
    outputs["output_flattened"] = softmax_rows(rows)
    return outputs
