"""Subprocess side of ``tests/test_compile_sharding.py`` (and of
``benchmarks/bench_data_parallel.py``): JAX fixes its device count when it starts, so each
multi-device check runs here, in a fresh interpreter, and prints one JSON line.

``python tests/sharding_worker.py MODE [options]`` with MODE one of

* ``compare``  — a tiny FCN-like net trained a few Adam steps with ``devices=None`` and with
  each ``--devices N``; prints the losses, metrics, prediction shapes and parameters of each;
* ``dropout``  — the same with a DropoutLayer (random masks) in the net;
* ``errors``   — the messages of an indivisible batch and of too many devices;
* ``process``  — one process of a multi-process run (``--coordinator``, ``--num-processes``,
  ``--process-id``): the same steps on this process's slice of the batch; process 0 writes
  ``--out`` (the final parameters);
* ``single``   — the same steps in one process on one device, writing ``--out``;
* ``join``     — only ``initialize_distributed`` (``--timeout``), for an absent coordinator;
* ``bench``    — steps per second of ``--devices N`` (``devices=None`` for 0).

Set ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` in the environment for N devices.
"""

import argparse
import json
import sys
import time

import numpy as np

N_CLASSES = 3   # labels 0, 1 and the void label 2
VOID = [2]


def build(channels=3, width=4, size=(8, 8), batch_norm=False):
    """An FCN-like net: conv → pool → conv → transposed conv (x2) → per-pixel softmax of
    the pixels flattened batch-major, as FCN-8's ``probs``; with ``batch_norm`` the first
    convolution is batch-normalised (Lasagne's ``batch_norm``)."""
    import pytensor.tensor as pt

    from fcn8_lasagne import layers
    from fcn8_lasagne.nonlinearities import softmax

    input_var = pt.tensor4("input_var")
    target_var = pt.ivector("target_var")
    net = layers.InputLayer((None, channels) + tuple(size), input_var)
    net = layers.Conv2DLayer(net, width, 3, pad="same", flip_filters=False)
    if batch_norm:
        net = layers.batch_norm(net)
    net = layers.MaxPool2DLayer(net, 2)
    net = layers.Conv2DLayer(net, width, 3, pad="same", flip_filters=False)
    net = layers.Deconv2DLayer(net, N_CLASSES, 2, stride=2, nonlinearity=None)
    net = layers.DimshuffleLayer(net, (0, 2, 3, 1))
    net = layers.ReshapeLayer(net, (-1, N_CLASSES))
    net = layers.NonlinearityLayer(net, nonlinearity=softmax)
    return input_var, target_var, net


def initial_values(net, seed):
    from fcn8_lasagne import layers

    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.3, value.shape).astype(value.dtype)
            for value in layers.get_all_param_values(net)]


def data(batch, steps, seed, channels=3, size=(8, 8)):
    """``steps`` global batches: images (B, C, H, W) and flattened labels (B·H·W,) with
    void pixels."""
    rng = np.random.default_rng(seed + 1)
    images = rng.normal(size=(steps, batch, channels) + tuple(size)).astype("float32")
    labels = rng.integers(0, N_CLASSES, size=(steps, batch * size[0] * size[1]))
    return images, labels.astype("int32")


def compile_step(input_var, target_var, net, **options):
    from fcn8_lasagne import layers, updates
    from fcn8_lasagne.compile import function
    from fcn8_lasagne.metrics import crossentropy_metric, jaccard_metric

    prediction = layers.get_output(net)
    loss = crossentropy_metric(prediction, target_var, void_labels=VOID)
    params = layers.get_all_params(net, trainable=True)
    step = function([input_var, target_var], loss,
                    updates=updates.adam(loss, params, learning_rate=1e-2), **options)
    test_prediction = layers.get_output(net, deterministic=True)
    validate = function([input_var, target_var],
                        [crossentropy_metric(test_prediction, target_var, VOID),
                         jaccard_metric(test_prediction, target_var, n_classes=2)],
                        **options)
    predict = function([input_var], test_prediction, **options)
    return step, validate, predict


def train(net_parts, values, images, labels, **options):
    """Run the steps; return losses, metrics, prediction and the step function."""
    from fcn8_lasagne import layers

    input_var, target_var, net = net_parts
    layers.set_all_param_values(net, values)
    step, validate, predict = compile_step(input_var, target_var, net, **options)
    losses = [float(step(x, y)) for x, y in zip(images, labels)]
    metrics = [np.asarray(value).tolist() for value in validate(images[0], labels[0])]
    prediction = np.asarray(predict(images[0]))
    return losses, metrics, prediction, step


def placement(step):
    """How the shared values a compiled step reads are placed: (count, all replicated over
    the mesh, numbers of devices)."""
    import jax

    from fcn8_lasagne.compile import _shared_storages

    compiled = next(iter(step._compiled.values()))
    arrays = [cell[0] for cell in _shared_storages(compiled) if isinstance(cell[0], jax.Array)]
    return {"count": len(arrays),
            "replicated": all(a.sharding.is_fully_replicated for a in arrays),
            "device_counts": sorted({len(a.sharding.device_set) for a in arrays})}


def layout(function, images, labels):
    """For each device of a sharded step: the rows of the images and the entries of the
    labels it holds, and the number of all-reduces in the compiled step."""
    compiled = next(iter(function._compiled.values()))
    shapes, placed = function._prepare((images, labels))
    thunk = compiled.vm
    for cell, value in zip(thunk.inputs, placed):
        cell[0] = value
    text = thunk.jit_fn.lower(*[cell[0] for cell in thunk.inputs]).compile().as_text()

    def ranges(array):
        return {str(shard.device.id): [shard.index[0].start or 0,
                                       shard.index[0].stop or array.shape[0]]
                for shard in array.addressable_shards}

    return {"images": ranges(placed[0]), "labels": ranges(placed[1]),
            "all_reduces": text.count("all-reduce(")}


def mode_compare(args):
    import jax

    from fcn8_lasagne import layers
    from fcn8_lasagne.compile import function

    parts = build()
    values = initial_values(parts[2], args.seed)
    images, labels = data(args.batch, args.steps, args.seed)
    result = {"device_count": jax.device_count()}
    for devices in [None] + args.devices:
        options = {"device": "jax"} if devices is None else {"device": "jax",
                                                             "devices": devices}
        losses, metrics, prediction, step = train(parts, values, images, labels, **options)
        entry = result[str(devices)] = {
            "losses": losses, "metrics": metrics,
            "prediction_shape": list(prediction.shape),
            "prediction": prediction.ravel().tolist(),
            "params": [np.asarray(v).ravel().tolist()
                       for v in layers.get_all_param_values(parts[2])],
            "placement": placement(step)}
        if devices is not None:
            entry["layout"] = layout(step, images[0], labels[0])
    # the last sharded run left the parameters on all its devices: a one-device JAX
    # function and a C function read them
    output = layers.get_output(parts[2], deterministic=True)
    one = np.asarray(function([parts[0]], output, device="jax")(images[0]))
    host = np.asarray(function([parts[0]], output, device="cpu")(images[0]))
    result["after"] = {"jax": one.ravel().tolist(), "cpu": host.ravel().tolist()}
    print(json.dumps(result))


def mode_batchnorm(args):
    """A batch-normalised net: losses, parameters and running averages after the steps on
    one device and on each --devices (the batch statistics of the global batch)."""
    from fcn8_lasagne import layers

    parts = build(batch_norm=True)
    values = initial_values(parts[2], args.seed)
    images, labels = data(args.batch, args.steps, args.seed)
    result = {}
    for devices in [None] + args.devices:
        options = {"device": "jax"} if devices is None else {"device": "jax",
                                                             "devices": devices}
        losses, _, _, _ = train(parts, values, images, labels, **options)
        result[str(devices)] = {
            "losses": losses,
            "params": [np.asarray(v).ravel().tolist()
                       for v in layers.get_all_param_values(parts[2])],
            "names": [p.name for p in layers.get_all_params(parts[2])]}
    print(json.dumps(result))


def mode_dropout(args):
    """A net with a DropoutLayer: losses of 3 steps on one device and on each --devices,
    and how many programs the step's jit compiled."""
    import pytensor.tensor as pt

    from fcn8_lasagne import layers
    from fcn8_lasagne.nonlinearities import softmax

    input_var, target_var = pt.tensor4("input_var"), pt.ivector("target_var")
    net = layers.InputLayer((None, 3, 8, 8), input_var)
    net = layers.Conv2DLayer(net, 4, 3, pad="same", flip_filters=False)
    net = layers.DropoutLayer(net, p=0.5)
    net = layers.Conv2DLayer(net, N_CLASSES, 1, nonlinearity=None)
    net = layers.DimshuffleLayer(net, (0, 2, 3, 1))
    net = layers.ReshapeLayer(net, (-1, N_CLASSES))
    net = layers.NonlinearityLayer(net, nonlinearity=softmax)
    values = initial_values(net, args.seed)
    images, labels = data(args.batch, args.steps, args.seed)
    result = {}
    for devices in [None] + args.devices:
        options = {"device": "jax"} if devices is None else {"device": "jax",
                                                             "devices": devices}
        losses, _, _, step = train((input_var, target_var, net), values, images, labels,
                                   **options)
        compiled = next(iter(step._compiled.values()))
        result[str(devices)] = {"losses": losses,
                                "programs": compiled.vm.jit_fn._cache_size()}
    print(json.dumps(result))


def mode_errors(args):
    from fcn8_lasagne.compile import function
    import pytensor.tensor as pt

    parts = build()
    step = compile_step(*parts, device="jax", devices=2)[0]
    images, labels = data(3, 1, args.seed)
    messages = {}
    try:
        step(images[0], labels[0])
    except ValueError as error:
        messages["indivisible"] = str(error)
    x = pt.matrix("x")
    try:
        function([x], x.sum(), device="jax", devices=64)
    except ValueError as error:
        messages["too_many"] = str(error)
    print(json.dumps(messages))


def _steps_on(values, images, labels, **options):
    from fcn8_lasagne import layers

    parts = build()
    layers.set_all_param_values(parts[2], values)
    step = compile_step(*parts, **options)[0]
    losses = [float(step(x, y)) for x, y in zip(images, labels)]
    return losses, layers.get_all_param_values(parts[2])


def _write(path, losses, params):
    np.savez(path, *params, losses=np.asarray(losses))


def mode_process(args):
    from fcn8_lasagne import compile as compiling
    from fcn8_lasagne import layers

    compiling.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                     timeout_s=args.timeout)
    import jax

    values = initial_values(build()[2], args.seed)
    images, labels = data(args.batch, args.steps, args.seed)
    share = args.batch // args.num_processes
    pixels = labels.shape[1] // args.batch
    rank = compiling.process_index()
    local_images = images[:, rank * share:(rank + 1) * share]
    local_labels = labels[:, rank * share * pixels:(rank + 1) * share * pixels]
    losses, params = _steps_on(values, local_images, local_labels, device="jax",
                               devices="all")
    wrote = False
    if compiling.is_writer():
        _write(args.out, losses, params)
        wrote = True
    print(json.dumps({"rank": rank, "process_count": jax.process_count(),
                      "device_count": jax.device_count(), "losses": losses,
                      "wrote": wrote}))
    sys.stdout.flush()


def mode_single(args):
    values = initial_values(build()[2], args.seed)
    images, labels = data(args.batch, args.steps, args.seed)
    losses, params = _steps_on(values, images, labels, device="jax")
    _write(args.out, losses, params)
    print(json.dumps({"losses": losses}))


def mode_join(args):
    from fcn8_lasagne import compile as compiling

    start = time.perf_counter()
    try:
        compiling.initialize_distributed(args.coordinator, args.num_processes,
                                         args.process_id, timeout_s=args.timeout)
        outcome = {"error": None}
    except RuntimeError as error:
        outcome = {"error": str(error)}
    outcome["seconds"] = time.perf_counter() - start
    print(json.dumps(outcome))
    sys.stdout.flush()


def mode_bench(args):
    size = tuple(args.size)
    parts = build(width=args.width, size=size)
    values = initial_values(parts[2], args.seed)
    images, labels = data(args.batch, 2, args.seed, size=size)
    options = {"device": "jax"}
    if args.devices[0]:
        options["devices"] = args.devices[0]
    from fcn8_lasagne import layers

    layers.set_all_param_values(parts[2], values)
    step = compile_step(*parts, **options)[0]
    start = time.perf_counter()
    float(step(images[0], labels[0]))
    compile_s = time.perf_counter() - start
    times = []
    for repeat in range(args.steps):
        start = time.perf_counter()
        float(step(images[repeat % 2], labels[repeat % 2]))
        times.append(time.perf_counter() - start)
    print(json.dumps({"devices": args.devices[0], "compile_s": compile_s,
                      "median_s": float(np.median(times)), "min_s": float(np.min(times)),
                      "steps_per_s": 1.0 / float(np.median(times))}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["compare", "batchnorm", "dropout", "errors",
                                         "process", "single", "join", "bench"])
    parser.add_argument("--devices", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=[8, 8])
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--coordinator", default="127.0.0.1:0")
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    globals()["mode_" + args.mode](args)


if __name__ == "__main__":
    main()
