"""Independent NumPy reference implementations the tests compare against.

Written from the definitions (sums over kernel taps, explicit windows), not from the
package's code paths, and deliberately simple: they are slow and only meant for small inputs.
"""

import numpy as np


def _pad_pair(pad, kernel_shape):
    """Integer padding per spatial axis for Theano/Lasagne pad specs."""
    if isinstance(pad, str):
        pad = (pad, pad)
    elif np.isscalar(pad):
        pad = (pad, pad)
    result = []
    for p, k in zip(pad, kernel_shape):
        if p == "valid":
            result.append(0)
        elif p == "full":
            result.append(k - 1)
        elif p in ("same", "half"):
            result.append(k // 2)
        else:
            result.append(int(p))
    return tuple(result)


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def conv2d(x, w, stride=1, pad=0, flip=True):
    """2-D convolution of NCHW ``x`` with ``w`` of shape (F, C, kh, kw).

    ``flip=True`` is a true convolution (kernel rotated 180 degrees, Theano's
    ``filter_flip=True`` and Lasagne's ``flip_filters=True``); ``flip=False`` is the
    cross-correlation. Output length ``(in + 2 pad - k) // stride + 1``.
    """
    sh, sw = _pair(stride)
    ph, pw = _pad_pair(pad, w.shape[2:])
    if flip:
        w = w[:, :, ::-1, ::-1]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2:]
    out_h = (xp.shape[2] - kh) // sh + 1
    out_w = (xp.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], out_h, out_w), dtype=np.float64)
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u : u + sh * (out_h - 1) + 1 : sh, v : v + sw * (out_w - 1) + 1 : sw]
            out += np.tensordot(patch, w[:, :, u, v], axes=([1], [1])).transpose(0, 3, 1, 2)
    return out


def conv2d_transpose(y, w, stride=1, crop=0, flip=True, output_size=None):
    """Transposed convolution: the gradient of :func:`conv2d` with respect to its input.

    ``y`` is (B, F, Ho, Wo) and ``w`` is the forward convolution's kernel (F, C, kh, kw);
    the result is (B, C, H, W) with ``H = (Ho - 1) * stride - 2 crop + kh`` unless
    ``output_size`` asks for a larger (stride-ambiguous) size. Every input pixel
    ``y[b, f, i, j]`` scatters ``y * w[f, :, u, v]`` onto output position
    ``(i * stride + u - crop, j * stride + v - crop)``: one strided slice per kernel tap.
    """
    sh, sw = _pair(stride)
    ph, pw = _pad_pair(crop, w.shape[2:])
    if flip:
        w = w[:, :, ::-1, ::-1]
    kh, kw = w.shape[2:]
    out_h_min = (y.shape[2] - 1) * sh - 2 * ph + kh
    out_w_min = (y.shape[3] - 1) * sw - 2 * pw + kw
    out_h, out_w = (out_h_min, out_w_min) if output_size is None else output_size
    in_h, in_w = y.shape[2:]
    full = np.zeros(
        (y.shape[0], w.shape[1], out_h + 2 * ph + kh + sh, out_w + 2 * pw + kw + sw),
        dtype=np.float64,
    )
    for u in range(kh):
        for v in range(kw):
            contribution = np.tensordot(y, w[:, :, u, v], axes=([1], [0])).transpose(0, 3, 1, 2)
            full[:, :, u : u + sh * in_h : sh, v : v + sw * in_w : sw] += contribution
    return full[:, :, ph : ph + out_h, pw : pw + out_w]


def conv2d_grad_weights(x, gy, filter_shape, stride=1, pad=0, flip=True):
    """Gradient of ``sum(conv2d(x, w) * gy)`` with respect to ``w`` of ``filter_shape``."""
    sh, sw = _pair(stride)
    kh, kw = filter_shape[2:]
    ph, pw = _pad_pair(pad, (kh, kw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h, out_w = gy.shape[2:]
    grad = np.zeros(filter_shape, dtype=np.float64)
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u : u + sh * (out_h - 1) + 1 : sh, v : v + sw * (out_w - 1) + 1 : sw]
            grad[:, :, u, v] = np.tensordot(gy, patch, axes=([0, 2, 3], [0, 2, 3]))
    if flip:
        grad = grad[:, :, ::-1, ::-1]
    return grad


def _pool_regions(length, pool, stride, pad, ignore_border, inc_pad):
    """Theano's window slices along one axis, on the zero-padded input."""
    padded = length + 2 * pad
    if ignore_border:
        n_out = (padded - pool) // stride + 1
    elif stride >= pool:
        n_out = (length - 1) // stride + 1
    else:
        n_out = max(0, (length - 1 - pool + stride) // stride) + 1
    regions = []
    for j in range(n_out):
        start = j * stride
        end = min(start + pool, padded)
        if not inc_pad:
            start = max(start, pad)
            end = min(end, padded - pad)
        regions.append((start, end))
    return regions


def pool2d(x, ws, stride=None, pad=(0, 0), ignore_border=True, mode="max"):
    """Theano's ``Pool`` on NCHW ``x``: windows clipped at the border.

    Only ``'average_inc_pad'`` sees the zero padding (it averages over the window clipped to
    the padded image); ``'max'``, ``'sum'`` and ``'average_exc_pad'`` use the window clipped
    to the unpadded image (so padding never wins a max).
    """
    ws = _pair(ws)
    stride = ws if stride is None else _pair(stride)
    pad = _pair(pad)
    inc_pad = mode == "average_inc_pad"
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    rows = _pool_regions(x.shape[2], ws[0], stride[0], pad[0], ignore_border, inc_pad)
    cols = _pool_regions(x.shape[3], ws[1], stride[1], pad[1], ignore_border, inc_pad)
    out = np.zeros(x.shape[:2] + (len(rows), len(cols)), dtype=np.float64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            window = xp[:, :, r0:r1, c0:c1]
            if mode == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            elif mode == "sum":
                out[:, :, i, j] = window.sum(axis=(2, 3))
            else:
                out[:, :, i, j] = window.mean(axis=(2, 3))
    return out


def max_pool2d_grad(x, gz, ws, stride=None, pad=(0, 0), ignore_border=True):
    """Theano's ``MaxPoolGrad``: every input equal to its window's maximum gets the gradient.

    Ties are not broken: all maximal elements of a window receive that window's ``gz``
    (PyTorch and JAX autodiff give it to one element only).
    """
    ws = _pair(ws)
    stride = ws if stride is None else _pair(stride)
    pad = _pair(pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1]))).astype(np.float64)
    rows = _pool_regions(x.shape[2], ws[0], stride[0], pad[0], ignore_border, False)
    cols = _pool_regions(x.shape[3], ws[1], stride[1], pad[1], ignore_border, False)
    gxp = np.zeros_like(xp)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            window = xp[:, :, r0:r1, c0:c1]
            is_max = window == window.max(axis=(2, 3), keepdims=True)
            gxp[:, :, r0:r1, c0:c1] += is_max * gz[:, :, i, j][:, :, None, None]
    return gxp[:, :, pad[0] : pad[0] + x.shape[2], pad[1] : pad[1] + x.shape[3]]


def average_pool2d_grad(x_shape, gz, ws, stride=None, pad=(0, 0), ignore_border=True,
                        mode="average_inc_pad"):
    """Gradient of :func:`pool2d` in an average (or sum) mode with respect to its input."""
    ws = _pair(ws)
    stride = ws if stride is None else _pair(stride)
    pad = _pair(pad)
    inc_pad = mode == "average_inc_pad"
    padded_shape = tuple(x_shape[:2]) + (x_shape[2] + 2 * pad[0], x_shape[3] + 2 * pad[1])
    rows = _pool_regions(x_shape[2], ws[0], stride[0], pad[0], ignore_border, inc_pad)
    cols = _pool_regions(x_shape[3], ws[1], stride[1], pad[1], ignore_border, inc_pad)
    gxp = np.zeros(padded_shape, dtype=np.float64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            size = 1 if mode == "sum" else max((r1 - r0) * (c1 - c0), 1)
            gxp[:, :, r0:r1, c0:c1] += gz[:, :, i, j][:, :, None, None] / size
    return gxp[:, :, pad[0] : pad[0] + x_shape[2], pad[1] : pad[1] + x_shape[3]]


def center_crop_offsets(sizes):
    """Lasagne's 'center' crop: offset ``(size - min) // 2`` for each size."""
    smallest = min(sizes)
    return [(size - smallest) // 2 for size in sizes]


def _relu(x):
    return np.maximum(x, 0)


def _center_crop_to(x, height, width):
    top = (x.shape[2] - height) // 2
    left = (x.shape[3] - width) // 2
    return x[:, :, top : top + height, left : left + width]


def _fuse(a, b):
    height = min(a.shape[2], b.shape[2])
    width = min(a.shape[3], b.shape[3])
    return _center_crop_to(a, height, width) + _center_crop_to(b, height, width)


def fcn_forward(x, params, variant="fcn8"):
    """The tutorial's FCN-8/16/32 (deterministic) written directly from its layer table.

    Parameters
    ----------
    x : ndarray (B, C, H, W)
    params : list of ndarray
        In Lasagne's ``get_all_params`` order (W, b per layer).
    variant : {'fcn8', 'fcn16', 'fcn32'}

    Returns
    -------
    dict
        Layer name → output (float64), for every named layer with an output of its own,
        and ``name + ':pre'`` → the pre-activation of each convolution (for
        :func:`fcn_backward`).
    """
    params = iter(np.asarray(p, dtype=np.float64) for p in params)
    out = {"input": x.astype(np.float64)}

    def conv(name, source, pad, flip):
        w, b = next(params), next(params)
        y = conv2d(out[source], w, 1, pad, flip=flip) + b[None, :, None, None]
        out[name + ":pre"] = y
        out[name] = _relu(y)

    def deconv(name, source, stride):
        w, b = next(params), next(params)
        # Lasagne's flip_filters=False is filter_flip=True on the gradient op
        out[name] = conv2d_transpose(out[source], w, stride, 0, flip=True) + b[None, :, None, None]

    previous = "input"
    for block, n_convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
        for index in range(1, n_convs + 1):
            name = f"conv{block}_{index}"
            conv(name, previous, 100 if name == "conv1_1" else 1, flip=False)
            previous = name
        out[f"pool{block}"] = pool2d(out[previous], 2)
        previous = f"pool{block}"
    conv("fc6", "pool5", 0, flip=False)
    out["fc6_dropout"] = out["fc6"]
    conv("fc7", "fc6_dropout", 0, flip=False)
    out["fc7_dropout"] = out["fc7"]
    conv("score_fr", "fc7_dropout", 0, flip=False)
    if variant == "fcn32":
        deconv("upsample", "score_fr", 32)
    else:
        deconv("score2", "score_fr", 2)
        conv("score_pool4", "pool4", 0, flip=True)
        out["score_fused"] = _fuse(out["score2"], out["score_pool4"])
        if variant == "fcn16":
            deconv("upsample", "score_fused", 16)
        else:
            deconv("score4", "score_fused", 2)
            conv("score_pool3", "pool3", 0, flip=True)
            out["score_final"] = _fuse(out["score4"], out["score_pool3"])
            deconv("upsample", "score_final", 8)
    out["score"] = _center_crop_to(out["upsample"], x.shape[2], x.shape[3])
    out["final_dimshuffle"] = out["score"].transpose(0, 2, 3, 1)
    n_classes = out["score"].shape[1]
    out["final_reshape"] = out["final_dimshuffle"].reshape(-1, n_classes)
    shifted = np.exp(out["final_reshape"] - out["final_reshape"].max(axis=1, keepdims=True))
    out["probs"] = shifted / shifted.sum(axis=1, keepdims=True)
    out["probs_reshape"] = out["probs"].reshape(out["final_dimshuffle"].shape)
    out["probs_dimshuffle"] = out["probs_reshape"].transpose(0, 3, 1, 2)
    return out


def scaled_random_params(shapes, rng, bias_scale=0.1):
    """Weights with He scaling and small random biases, so deep ReLU stacks stay lively.

    ``bias_scale=0`` gives the tutorial's initial zero biases: the ``pad=100`` border then
    stays exactly 0 through every layer, so max-pool ties there are exact in any float
    arithmetic (with non-zero biases the border is a constant that BLAS rounding may vary in
    the last bit, which decides Theano's tie rule differently per position).
    """
    values = []
    for shape in shapes:
        if len(shape) == 1:
            values.append((bias_scale * rng.standard_normal(shape)).astype(np.float32))
        else:
            fan_in = np.prod(shape[1:])
            values.append((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
    return values


def _relu_grad(pre):
    """Derivative of Theano's ``relu(x) = 0.5 * (x + abs(x))``: 1, 0.5 at exactly 0, 0."""
    return 0.5 * (1.0 + np.sign(pre))


def _uncrop(grad, full_shape):
    """Gradient of a centre crop: the cropped gradient placed back at the crop offset."""
    result = np.zeros(full_shape)
    top = (full_shape[2] - grad.shape[2]) // 2
    left = (full_shape[3] - grad.shape[3]) // 2
    result[:, :, top : top + grad.shape[2], left : left + grad.shape[3]] = grad
    return result


def fcn8_loss_and_grads(x, params, labels, void_label):
    """The tutorial's training loss on FCN-8 and its gradient for each parameter (NumPy).

    Loss: predictions clipped to ``[1e-6, 1 - 1e-6]``, void pixels masked, mean
    categorical cross-entropy over the non-void pixels (``train_fcn8.py``). The network runs
    without dropout (``p=0``): Theano's and PyTensor's dropout masks differ.

    Returns
    -------
    loss : float
    grads : list of ndarray, in the order of ``params``
    """
    params = [np.asarray(p, dtype=np.float64) for p in params]
    out = fcn_forward(x, params, "fcn8")
    names = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7",
             "score_fr", "score2", "score_pool4", "score4", "score_pool3", "upsample"]
    weights = {name: (params[2 * k], params[2 * k + 1]) for k, name in enumerate(names)}
    grads = {}
    probs = out["probs"]
    mask = (labels != void_label).astype(np.float64)
    safe_labels = np.where(labels == void_label, 0, labels)
    picked = probs[np.arange(len(labels)), safe_labels]
    clipped = np.clip(picked, 1e-6, 1 - 1e-6)
    loss = np.sum(-np.log(clipped) * mask) / mask.sum()
    d_probs = np.zeros_like(probs)
    inside = (picked >= 1e-6) & (picked <= 1 - 1e-6)
    d_probs[np.arange(len(labels)), safe_labels] = -mask * inside / (clipped * mask.sum())
    d_logits = probs * (d_probs - np.sum(d_probs * probs, axis=1, keepdims=True))
    d_score = d_logits.reshape(out["final_dimshuffle"].shape).transpose(0, 3, 1, 2)
    d = {"upsample": _uncrop(d_score, out["upsample"].shape)}

    def add(name, value):
        d[name] = d[name] + value if name in d else value

    def deconv_back(name, source, stride):
        w, _ = weights[name]
        g = d[name]
        grads[name] = (conv2d_grad_weights(g, out[source], w.shape, stride, 0, flip=True),
                       g.sum(axis=(0, 2, 3)))
        add(source, conv2d(g, w, stride, 0, flip=True))

    def conv_back(name, source, pad, flip):
        w, _ = weights[name]
        g = d[name] * _relu_grad(out[name + ":pre"])
        grads[name] = (conv2d_grad_weights(out[source], g, w.shape, 1, pad, flip=flip),
                       g.sum(axis=(0, 2, 3)))
        add(source, conv2d_transpose(g, w, 1, pad, flip=flip, output_size=out[source].shape[2:]))

    def fuse_back(name, first, second):
        add(first, _uncrop(d[name], out[first].shape))
        add(second, _uncrop(d[name], out[second].shape))

    deconv_back("upsample", "score_final", 8)
    fuse_back("score_final", "score4", "score_pool3")
    conv_back("score_pool3", "pool3", 0, flip=True)
    deconv_back("score4", "score_fused", 2)
    fuse_back("score_fused", "score2", "score_pool4")
    conv_back("score_pool4", "pool4", 0, flip=True)
    deconv_back("score2", "score_fr", 2)
    conv_back("score_fr", "fc7", 0, flip=False)
    conv_back("fc7", "fc6", 0, flip=False)
    conv_back("fc6", "pool5", 0, flip=False)
    for block, n_convs in ((5, 3), (4, 3), (3, 3), (2, 2), (1, 2)):
        last = f"conv{block}_{n_convs}"
        add(last, max_pool2d_grad(out[last], d[f"pool{block}"], 2))
        for index in range(n_convs, 0, -1):
            name = f"conv{block}_{index}"
            if index > 1:
                source = f"conv{block}_{index - 1}"
            else:
                source = "input" if block == 1 else f"pool{block - 1}"
            conv_back(name, source, 100 if name == "conv1_1" else 1, flip=False)
    flat = []
    for name in names:
        flat.extend(grads[name])
    return float(loss), flat
