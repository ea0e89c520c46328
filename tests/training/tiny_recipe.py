"""A tiny recipe (two convolutions on 3-channel images) over which the trainer's guarantees
are tested once for every recipe: it compiles in seconds and saves kilobytes."""

import pytensor.tensor as pt

from fcn8_lasagne import compile as compiling
from fcn8_lasagne.data import BatchIterator, load_dataset
from fcn8_lasagne.layers import (
    Conv2DLayer,
    DimshuffleLayer,
    InputLayer,
    NonlinearityLayer,
    ReshapeLayer,
    get_all_params,
    get_output,
)
from fcn8_lasagne.metrics import accuracy_metric, crossentropy_metric, jaccard_metric
from fcn8_lasagne.nonlinearities import softmax
from fcn8_lasagne.training import (
    Data,
    Model,
    Recipe,
    RunFiles,
    TrainingConfig,
    TrainingFunctions,
)
from fcn8_lasagne.updates import adam

TINY_FILES = RunFiles(best_weights="tiny_best.npz", last_weights="tiny_last.npz",
                      best_errors="tiny_errors_best.npz", last_errors="tiny_errors_last.npz",
                      log="tiny_output.log", curves="tiny_curves.png")


class TinyRecipe(Recipe):
    """Conv 3x3 (``width`` filters) -> conv 1x1 -> softmax per pixel, Adam, masked
    cross-entropy: the FCN-8 recipe's functions on a network of a few hundred weights."""

    datasets = ("synthetic",)
    generated_datasets = ("synthetic",)
    files = TINY_FILES

    def defaults(self, dataset):
        return dict(learning_rate=1e-2, num_epochs=3, batch_size=(2, 2, 2), seed=1)

    def add_arguments(self, parser):
        parser.add_argument("--width", type=int, default=4)

    def options_from_args(self, args):
        return {"width": args.width}

    def load_data(self, config):
        splits = [load_dataset(config.dataset, config.data_dir, split,
                               **config.dataset_options)
                  for split in ("train", "valid", "test")]
        return Data(*splits, n_classes=splits[0].n_classes,
                    void_labels=[splits[0].void_label], n_channels=3)

    def iterators(self, config, data):
        sizes = config.batch_size
        return (BatchIterator(data.train, sizes[0], shuffle=True, seed=config.seed),
                BatchIterator(data.valid, sizes[1]), BatchIterator(data.test, sizes[2]))

    def build_network(self, config, data):
        input_var, target_var = pt.tensor4("x"), pt.ivector("y")
        net = InputLayer((None, data.n_channels, None, None), input_var)
        net = Conv2DLayer(net, config.options.get("width", 4), 3, pad="same")
        net = Conv2DLayer(net, data.n_classes, 1, nonlinearity=None)
        net = DimshuffleLayer(net, (0, 2, 3, 1))
        net = ReshapeLayer(net, (-1, data.n_classes))
        return Model(NonlinearityLayer(net, softmax), input_var, target_var)

    def build_functions(self, config, model, data):
        prediction = get_output(model.output)
        test_prediction = get_output(model.output, deterministic=True)
        target, void = model.target_var, data.void_labels
        loss = crossentropy_metric(prediction, target, void)
        params = get_all_params(model.output, trainable=True)
        updates = adam(loss, params, learning_rate=config.learning_rate)
        inputs = [model.input_var, target]
        parallel = ({} if config.devices is None
                    else dict(devices=config.devices, batch_inputs=inputs))
        train_fn = compiling.function(inputs, loss, updates=updates, device=config.device,
                                      **parallel)
        val_fn = compiling.function(inputs, [crossentropy_metric(test_prediction, target, void),
                                             accuracy_metric(test_prediction, target, void),
                                             jaccard_metric(test_prediction, target,
                                                            data.n_classes)],
                                    device=config.device, **parallel)
        return TrainingFunctions(train_fn, val_fn, None, params, updates)


def tiny_config(tmp_path, **overrides):
    """A run of the tiny recipe on 4/2/2 synthetic 28x28 images (data in tmp_path/data)."""
    settings = dict(dataset="synthetic", data_dir=str(tmp_path / "data"), num_epochs=2,
                    batch_size=(2, 2, 2), learning_rate=1e-2, savepath=str(tmp_path / "run"),
                    seed=5, model="tiny",
                    dataset_options=dict(n_train=4, n_valid=2, n_test=2, image_size=(28, 28)))
    settings.update(overrides)
    return TrainingConfig(**settings)
