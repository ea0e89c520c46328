"""NumPy references for bilinear resizing and spatial-transformer sampling.

Written per output pixel from the definitions (MXNet's / PyTorch's source-coordinate
formulas, Theano's padded transposed convolution, the spatial transformer's grid, the thin
plate spline's linear system), with loops and in float64: slow, for small inputs only.
"""

import numpy as np


def _source(dst, in_size, out_size, align_corners):
    if align_corners:
        return dst * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return max((dst + 0.5) * in_size / out_size - 0.5, 0.0)


def _lerp_indices(src, in_size):
    low = min(int(np.floor(src)), in_size - 1)
    high = min(low + 1, in_size - 1)
    return low, high, src - low


def bilinear_resize(x, size, align_corners):
    """(B, C, H, W) -> (B, C, *size), one output pixel at a time."""
    batch, channels, height, width = x.shape
    out_h, out_w = size
    out = np.zeros((batch, channels, out_h, out_w))
    for i in range(out_h):
        y0, y1, fy = _lerp_indices(_source(i, height, out_h, align_corners), height)
        for j in range(out_w):
            x0, x1, fx = _lerp_indices(_source(j, width, out_w, align_corners), width)
            out[:, :, i, j] = ((1 - fy) * (1 - fx) * x[:, :, y0, x0]
                               + (1 - fy) * fx * x[:, :, y0, x1]
                               + fy * (1 - fx) * x[:, :, y1, x0]
                               + fy * fx * x[:, :, y1, x1])
    return out


def linear_map_matrix(function, in_shape):
    """The matrix ``M`` of a linear ``function`` of arrays of ``in_shape``:
    ``function(x).ravel() == M @ x.ravel()``."""
    count = int(np.prod(in_shape))
    columns = []
    for k in range(count):
        unit = np.zeros(count)
        unit[k] = 1
        columns.append(np.asarray(function(unit.reshape(in_shape)), dtype=np.float64).ravel())
    return np.stack(columns, axis=1)


def _theano_upsample_axis(x, ratio, axis):
    """Theano's 1-D step: copy the first and last entries once more, then a transposed
    convolution with the kernel (1, 2, .., ratio, .., 2, 1) / ratio, stride ``ratio`` and
    padding ``2 ratio - (ratio - 1) // 2 - 1``."""
    x = np.moveaxis(x, axis, -1)
    padded = np.concatenate([x[..., :1], x, x[..., -1:]], axis=-1)
    kernel = np.concatenate([np.arange(1, ratio + 1), np.arange(ratio - 1, 0, -1)]) / ratio
    pad = 2 * ratio - (ratio - 1) // 2 - 1
    out = np.zeros(x.shape[:-1] + (x.shape[-1] * ratio,))
    for o in range(out.shape[-1]):
        for i in range(padded.shape[-1]):
            tap = o + pad - ratio * i
            if 0 <= tap < len(kernel):
                out[..., o] += padded[..., i] * kernel[tap]
    return np.moveaxis(out, -1, axis)


def theano_bilinear_upsampling(x, ratio):
    """Theano 1.0.5's ``bilinear_upsampling(x, ratio)`` (integer ratio), rows then columns."""
    return _theano_upsample_axis(_theano_upsample_axis(x, ratio, 2), ratio, 3)


def _border_index(index, size, border_mode):
    if border_mode == "nearest":
        return min(max(index, 0), size - 1)
    if border_mode == "wrap":
        return index % size
    period = 2 * (size - 1)  # mirror: reflect at 0 and at size - 1
    index = index % period
    return period - index if index > size - 1 else index


def bilinear_sample(image, xs, ys, border_mode):
    """Sample ``image`` (C, H, W) at the normalised points ``xs``, ``ys`` (any shape, -1 and
    1 at the first and last pixel centres): the spatial transformer's bilinear kernel, the
    four neighbours' indices mapped by ``border_mode`` and their weights from the unmapped
    floor and floor + 1."""
    channels, height, width = image.shape
    out = np.zeros((channels,) + np.shape(xs))
    for position in np.ndindex(*np.shape(xs)):
        px = (xs[position] + 1) / 2 * (width - 1)
        py = (ys[position] + 1) / 2 * (height - 1)
        fx, fy = np.floor(px), np.floor(py)
        total = np.zeros(channels)
        for dy in (0, 1):
            for dx in (0, 1):
                weight = (1 - abs(px - (fx + dx))) * (1 - abs(py - (fy + dy)))
                row = _border_index(int(fy) + dy, height, border_mode)
                column = _border_index(int(fx) + dx, width, border_mode)
                total += weight * image[:, row, column]
        out[(slice(None),) + position] = total
    return out


def target_grid(height, width):
    """The (x_t, y_t) target grid, each (height, width), evenly spaced over [-1, 1]."""
    return np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))


def affine_transform(x, theta, out_size, border_mode):
    """The affine spatial transformer: (B, C, H, W) input, (B, 6) theta."""
    x_t, y_t = target_grid(*out_size)
    out = np.zeros(x.shape[:2] + tuple(out_size))
    for b in range(x.shape[0]):
        a = np.reshape(theta[b], (2, 3))
        xs = a[0, 0] * x_t + a[0, 1] * y_t + a[0, 2]
        ys = a[1, 0] * x_t + a[1, 1] * y_t + a[1, 2]
        out[b] = bilinear_sample(x[b], xs, ys, border_mode)
    return out


def _radial(r2):
    return np.where(r2 > 0, r2 * np.log(np.where(r2 > 0, r2, 1)), 0.0)


def thin_plate_spline(x, offsets, num_points, out_size, border_mode):
    """The thin plate spline transformer: control points on an even grid over [-1, 1]^2
    move by ``offsets`` (B, 2 * num_points: x offsets then y offsets); the spline through
    them (Bookstein's system solved in float64) maps the target grid to source points."""
    side = int(round(np.sqrt(num_points)))
    cx, cy = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
    source = np.stack([cx.ravel(), cy.ravel()], axis=1)  # (K, 2)
    K = _radial(((source[:, None, :] - source[None, :, :]) ** 2).sum(-1))
    P = np.concatenate([np.ones((num_points, 1)), source], axis=1)
    system = np.block([[K, P], [P.T, np.zeros((3, 3))]])
    x_t, y_t = target_grid(*out_size)
    points = np.stack([x_t.ravel(), y_t.ravel()], axis=1)
    basis = _radial(((points[:, None, :] - source[None, :, :]) ** 2).sum(-1))
    out = np.zeros(x.shape[:2] + tuple(out_size))
    for b in range(x.shape[0]):
        dest = source + np.reshape(offsets[b], (2, num_points)).T
        rhs = np.concatenate([dest, np.zeros((3, 2))], axis=0)
        solution = np.linalg.solve(system, rhs)  # (K + 3, 2): radial weights, then a
        mapped = basis @ solution[:num_points] + np.concatenate(
            [np.ones((len(points), 1)), points], axis=1) @ solution[num_points:]
        xs = mapped[:, 0].reshape(out_size)
        ys = mapped[:, 1].reshape(out_size)
        out[b] = bilinear_sample(x[b], xs, ys, border_mode)
    return out
