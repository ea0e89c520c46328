"""FCN-8's convolutions counted in floating-point operations, and the machine's sgemm speed.

Throughput is reported as GFLOP/s *counted as direct convolutions*: a convolution with
``C`` input channels, ``F`` filters, a ``kh x kw`` kernel and an output of
``B x Hout x Wout`` pixels counts ``2 * B * F * C * kh * kw * Hout * Wout`` operations (one
multiply and one add per product), whatever algorithm computes it; Winograd's, which needs
fewer products, can therefore exceed the GEMM speed. A transposed convolution of an input
``(B, Cin, h, w)`` with a kernel ``(Cin, Cout, kh, kw)`` counts
``2 * B * Cin * Cout * kh * kw * h * w`` (each input pixel scatters its ``Cout * kh * kw``
products). A training step counts every convolution three times (forward, input gradient,
weight gradient) except ``conv1_1``'s input gradient, which nothing needs. Pooling, biases,
nonlinearities, the loss and the update are not counted.

The reference is the BLAS that our convolutions call: the best of a few ``3072 x 3072``
single-precision products through :func:`fcn8_lasagne.ops._blas.gemm` (OpenBLAS's own
threads, as many as our worker pool has), measured in the same process and run as the
convolutions it is compared with.
"""

import time

import numpy as np

__all__ = ["fcn8_layers", "conv_flops", "fcn8_flops", "sgemm_gflops", "simd_level",
           "SGEMM_SIZE"]

#: Side of the square matrices of the sgemm reference.
SGEMM_SIZE = 3072


def fcn8_layers(size, n_classes=21, width=None):
    """``(name, kind, input shape, weight shape, stride, pad)`` of FCN-8's convolutions.

    ``kind`` is ``'conv'`` (weights ``(F, C, kh, kw)``) or ``'deconv'`` (a transposed
    convolution, weights ``(C, F, kh, kw)`` as PyTorch's ``conv_transpose2d`` takes them).
    Input shapes have batch 1; ``size`` is the image height (and width unless ``width``).
    """
    layers = []
    height, width = size, size if width is None else width
    channels = 3
    blocks = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    for block, (filters, count) in enumerate(blocks, start=1):
        for index in range(1, count + 1):
            pad = 100 if (block, index) == (1, 1) else 1
            layers.append((f"conv{block}_{index}", "conv", (1, channels, height, width),
                           (filters, channels, 3, 3), 1, pad))
            height, width, channels = height + 2 * pad - 2, width + 2 * pad - 2, filters
        height, width = height // 2, width // 2
        if block == 3:
            pool3 = (height, width)
        if block == 4:
            pool4 = (height, width)
    layers.append(("fc6", "conv", (1, 512, height, width), (4096, 512, 7, 7), 1, 0))
    fc6 = (height - 6, width - 6)
    layers.append(("fc7", "conv", (1, 4096, *fc6), (4096, 4096, 1, 1), 1, 0))
    layers.append(("score_fr", "conv", (1, 4096, *fc6), (n_classes, 4096, 1, 1), 1, 0))
    layers.append(("score2", "deconv", (1, n_classes, *fc6), (n_classes, n_classes, 4, 4), 2, 0))
    layers.append(("score_pool4", "conv", (1, 512, *pool4), (n_classes, 512, 1, 1), 1, 0))
    score4_in = tuple(min(2 * f + 2, p) for f, p in zip(fc6, pool4))
    layers.append(("score4", "deconv", (1, n_classes, *score4_in),
                   (n_classes, n_classes, 4, 4), 2, 0))
    layers.append(("score_pool3", "conv", (1, 256, *pool3), (n_classes, 256, 1, 1), 1, 0))
    upsample_in = tuple(min(2 * s + 2, p) for s, p in zip(score4_in, pool3))
    layers.append(("upsample", "deconv", (1, n_classes, *upsample_in),
                   (n_classes, n_classes, 16, 16), 8, 0))
    return layers


def conv_flops(kind, x_shape, w_shape, stride, pad):
    """Operations of one layer counted as a direct (or transposed) convolution."""
    batch, _, height, width = x_shape
    if kind == "deconv":
        return 2.0 * batch * height * width * int(np.prod(w_shape))
    kernel_h, kernel_w = w_shape[2:]
    out_h = (height + 2 * pad - kernel_h) // stride + 1
    out_w = (width + 2 * pad - kernel_w) // stride + 1
    return 2.0 * batch * out_h * out_w * int(np.prod(w_shape))


def fcn8_flops(batch, height, width, n_classes=21, mode="forward"):
    """Operations of FCN-8's forward pass (``mode='forward'``) or training step
    (``'train'``: forward, input and weight gradients, without ``conv1_1``'s input
    gradient), counted as direct convolutions (see the module docstring)."""
    total = 0.0
    for name, kind, x_shape, w_shape, stride, pad in fcn8_layers(height, n_classes, width):
        flops = conv_flops(kind, (batch,) + x_shape[1:], w_shape, stride, pad)
        if mode == "forward":
            total += flops
        elif mode == "train":
            total += flops * (2 if name == "conv1_1" else 3)
        else:
            raise ValueError(f"mode must be 'forward' or 'train', got {mode!r}")
    return total


def sgemm_gflops(repeat=5, size=SGEMM_SIZE, seed=0):
    """Best GFLOP/s of ``repeat`` float32 ``size x size`` products (after one warm-up)
    through the GEMM our convolutions call, with OpenBLAS's own threads."""
    from fcn8_lasagne.ops._blas import gemm

    rng = np.random.default_rng(seed)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty((size, size), dtype=np.float32)
    gemm(a, b, out)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        gemm(a, b, out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best / 1e9


def simd_level(cpuinfo="/proc/cpuinfo"):
    """``'AVX-512'``, ``'AVX2'`` or ``'older'`` from the CPU flags (None off Linux)."""
    try:
        with open(cpuinfo) as stream:
            for line in stream:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    if "avx512f" in flags:
                        return "AVX-512"
                    return "AVX2" if "avx2" in flags else "older"
    except OSError:
        pass
    return None
