"""The ``fcn8`` command: inspect, train, evaluate, predict, convert, dump-activations.

Argument parsing and printing only; the work is done by the package's modules.
``fcn8 train`` accepts ``train_fcn8.py``'s flags verbatim (``-dataset``, ``-learning_rate``,
``-penal_cst``, ``-num_epochs``/``--num_epochs``/``-ne``, ``-max_patience``,
``-batch_size N N N``, ``-data_augmentation JSON``, ``-early_stop_class``,
``-train_from_0_255``). It reads ``--model`` first, then adds that model's own flags
(its recipe's :meth:`~fcn8_lasagne.training.Recipe.add_arguments`).
"""

import argparse
import json
import os
import sys
import zipfile
import zlib

import numpy as np

__all__ = ["main", "build_parser"]

MODELS = ("fcn8", "fcn16", "fcn32")
# fcn8 evaluate also takes the dilated-ResNet FCNs
FCN_RESNET_MODELS = ("fcn_resnet50", "fcn_resnet101")
EVALUATE_MODELS = MODELS + FCN_RESNET_MODELS
DEVICES = ("cpu", "jax", "gpu")
# kept in step with fcn8_lasagne.compile (not imported here so --help stays fast)
PRECISIONS = ("bf16", "float32", "tf32")
# kept in step with fcn8_lasagne.weights.convert (not imported here so --help stays fast)
WEIGHT_FORMATS = ("lasagne-vgg16", "vgg16-pkl", "matconvnet", "mat", "torch", "pytorch",
                  "caffe", "caffemodel")
CONVERT_MODELS = MODELS + ("fcn8s-caffe", "fcn8s-atonce-caffe", "fcn16s-caffe",
                           "fcn32s-caffe")


def _true_false(text):
    """The tutorial used ``type=bool`` (any text was True); accept real booleans instead."""
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _json_dict(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"-data_augmentation: invalid JSON ({error})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("-data_augmentation: expected a JSON object")
    return value


def _add_device(parser):
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where compiled functions run (default cpu; 'gpu' needs "
                             "fcn8_lasagne[gpu])")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="product precision on --device jax/gpu: float32 (default, the "
                             "tutorial's numerics), tf32 or bf16 (faster on recent GPUs)")


def _add_dataset_options(parser):
    parser.add_argument("--class-names", nargs="+", default=None,
                        help="class names of a 'folder' dataset")
    parser.add_argument("--void-values", type=int, nargs="+", default=None, metavar="V",
                        help="label values of a 'folder' dataset to ignore (void)")
    parser.add_argument("--synthetic-images", type=int, nargs=3, default=None,
                        metavar=("TRAIN", "VALID", "TEST"),
                        help="images per split of the synthetic data (default 48 12 12)")
    parser.add_argument("--synthetic-size", type=int, nargs=2, default=None,
                        metavar=("H", "W"), help="synthetic image size (default 64 80)")


def _add_allow_nonfinite(parser):
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="accept NaN or infinite values in the weight file (by default "
                             "an error: such a network predicts class 0 everywhere)")


def _dataset_name(args, flag, recipe=None):
    """The dataset named by ``flag`` (``-dataset`` / ``--dataset``), checked against the
    known ones, then against those ``recipe`` takes (default: the FCN models'), before
    anything else is said about it."""
    from .data import DATASETS
    from .training import get_recipe

    dataset = "polyps912" if args.dataset == "polyps" else args.dataset
    if dataset not in DATASETS:
        raise ValueError(f"{flag} {args.dataset!r} is not a known dataset; expected one of "
                         f"{', '.join(DATASETS)} (or polyps, for polyps912)")
    (recipe or get_recipe("fcn8")).check_dataset(dataset, flag)
    return dataset


def _dataset_options(args, dataset, flag):
    """Reader keyword arguments from the dataset flags, each checked against ``dataset``."""
    options = {}
    if dataset == "folder" and not args.class_names:
        raise ValueError(f"{flag} folder needs --class-names NAME [NAME ...], one name per "
                         "class (label value i is class i; void values are ignored)")
    if args.class_names:
        if dataset != "folder":
            raise ValueError(f"--class-names applies to {flag} folder only (dataset "
                             f"{dataset} names its own classes)")
        repeated = sorted({name for name in args.class_names
                           if args.class_names.count(name) > 1})
        if repeated:
            raise ValueError(f"--class-names: each class needs its own name, got "
                             f"{' '.join(args.class_names)} (repeated: {', '.join(repeated)})")
        options["class_names"] = args.class_names
    if args.void_values:
        if dataset != "folder":
            raise ValueError(f"--void-values applies to {flag} folder only")
        options["void_values"] = args.void_values
    for name, value in (("--synthetic-images", args.synthetic_images),
                        ("--synthetic-size", args.synthetic_size)):
        if value and dataset != "synthetic":
            raise ValueError(f"{name} applies to {flag} synthetic only, not {dataset}")
    if args.synthetic_images:
        if any(count < 1 for count in args.synthetic_images):
            raise ValueError("--synthetic-images TRAIN VALID TEST must be positive image "
                             "counts, got " + " ".join(map(str, args.synthetic_images)))
        options.update(zip(("n_train", "n_valid", "n_test"), args.synthetic_images))
    if args.synthetic_size:
        from .models.summary import check_input_size

        _check_size_bound(args.synthetic_size, "--synthetic-size")
        check_input_size(*args.synthetic_size, "--synthetic-size")
        options["image_size"] = tuple(args.synthetic_size)
    return options


#: The largest image side the commands accept (a 16384x16384 FCN-8 input already needs
#: tens of gigabytes of activations).
MAX_IMAGE_SIDE = 16384


def _check_size_bound(size, flag):
    if any(side > MAX_IMAGE_SIDE for side in size):
        raise ValueError(f"{flag}: at most {MAX_IMAGE_SIDE} pixels a side, got "
                         f"{size[0]}x{size[1]}")


ON_ERROR = ("fail", "skip")


def _add_streaming(parser, what, skipped, when=""):
    parser.add_argument("--on-error", choices=ON_ERROR, default="fail",
                        help=f"{what} that cannot be used (unreadable or truncated file, "
                             f"below the 26x26 minimum, not 8-bit): 'fail' (default) stops "
                             f"with one line naming it{when}; 'skip' names it in one line "
                             f"on stderr and it is {skipped}. Any skip makes the exit status "
                             f"1 (with a summary line), so that a script cannot take partial "
                             f"results for complete ones; 0 means none was skipped")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it is shown only when stderr is a terminal)")


def _add_dataset(parser):
    parser.add_argument("--dataset", default="synthetic",
                        help="polyps912 | camvid | folder | synthetic (default)")
    parser.add_argument("--data-dir", default=None, help="dataset root")
    parser.add_argument("--split", default="test", help="train | valid | test (default)")
    _add_dataset_options(parser)


def build_parser(train_model="fcn8"):
    """The argument parser of the ``fcn8`` command.

    ``train_model``: the model whose own flags ``fcn8 train`` takes (its recipe's
    ``add_arguments``); :func:`main` reads it from ``--model`` first."""
    from .training import RECIPES, get_recipe

    parser = argparse.ArgumentParser(
        prog="fcn8", description="The deeplearning.net FCN-8 tutorial on PyTensor.")
    commands = parser.add_subparsers(dest="command", required=True)

    inspect = commands.add_parser("inspect", help="layer table for a model and input size")
    inspect.add_argument("--model", choices=MODELS, default="fcn8")
    inspect.add_argument("--n-classes", type=int, default=21)
    inspect.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    inspect.add_argument("--batch", type=int, default=1)
    inspect.add_argument("--channels", type=int, default=3)

    train = commands.add_parser("train", help="train_fcn8.py (and the sibling models)",
                                description="Train as train_fcn8.py did (same flags); "
                                            "--model picks another model, whose own flags "
                                            "follow (fcn8 train --model M --help lists "
                                            "them).")
    train.add_argument("-dataset", default="synthetic",
                       help="synthetic (default, built in) | polyps912 (or polyps) | camvid | "
                            "folder for the FCN models; the others' take their own")
    train.add_argument("-learning_rate", type=float, default=None)
    train.add_argument("-penal_cst", type=float, default=None, help="L2 weight decay")
    train.add_argument("-num_epochs", "--num_epochs", "-ne", dest="num_epochs", type=int,
                       default=None)
    train.add_argument("-max_patience", type=int, default=None)
    train.add_argument("-batch_size", type=int, nargs=3, default=None,
                       metavar=("TRAIN", "VALID", "TEST"))
    train.add_argument("-data_augmentation", type=_json_dict, default=None)
    train.add_argument("-early_stop_class", type=int, default=None)
    train.add_argument("-train_from_0_255", type=_true_false, nargs="?", const=True,
                       default=False)
    train.add_argument("--flip-every-image", action="store_true",
                       help="reproduce the original loader, which flipped every image")
    train.add_argument("--data-dir", default=None)
    train.add_argument("--savepath", default=None,
                       help="output folder (default save_models/<dataset>/<model>_data_aug)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the last epoch saved in --savepath")
    train.add_argument("--overwrite", action="store_true",
                       help="start a new run in a --savepath that already holds one, "
                            "replacing its files (without it, that is an error)")
    train.add_argument("--seed", type=int, default=None,
                       help="seeds initialisation, dropout, shuffling and augmentation "
                            "(default: 1 for the synthetic data, unseeded otherwise)")
    train.add_argument("--model", choices=tuple(RECIPES), default="fcn8")
    train.add_argument("--init-weights", default=None, help="Lasagne .npz to start from")
    train.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                       help="stop starting epochs once the last epoch's duration says the "
                            "next would end more than SECONDS after the start (the final "
                            "test still runs; not in the original). 0: no budget")
    _add_dataset_options(train)
    train.add_argument("--no-progress", action="store_true")
    _add_allow_nonfinite(train)
    _add_device(train)
    train.add_argument("--devices", type=_device_count, default=None, metavar="N",
                       help="train data-parallel on N devices of --device jax/gpu, or 'all' "
                            "(not in the original): each batch is split over the devices, "
                            "so every -batch_size (and each split's last batch) must be a "
                            "multiple of N; validation and the test run on the same "
                            "devices. Not part of the saved state: --resume may use another "
                            "N. On the CPU, XLA_FLAGS=--xla_force_host_platform_device_count"
                            "=N simulates N devices")
    train.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="multi-process (multi-host) run: the address of process 0; "
                            "start the same command in every process with "
                            "--num-processes P and its own --process-id I. Each process "
                            "feeds its consecutive share of every batch to the devices "
                            "(--devices, default all of every process's devices); only "
                            "process 0 prints and writes files in --savepath (--resume "
                            "needs that --savepath readable by every process). Needs a "
                            "seed (--seed; the synthetic data's default is 1)")
    train.add_argument("--num-processes", type=int, default=None, metavar="P")
    train.add_argument("--process-id", type=int, default=None, metavar="I")
    get_recipe(train_model).add_arguments(train)

    evaluate = commands.add_parser("evaluate", help="per-class IoU of weights on a split")
    evaluate.add_argument("weights", help="a Lasagne .npz (for fcn_resnet50/101 also a "
                                          "torchvision .pth or a Gluon-CV .params)")
    evaluate.add_argument("--model", choices=EVALUATE_MODELS, default="fcn8")
    _add_dataset(evaluate)
    # `-dataset` as fcn8 train spells it; the default depends on --model (see _evaluate)
    evaluate.add_argument("-dataset", dest="dataset", default=argparse.SUPPRESS,
                          help=argparse.SUPPRESS)
    evaluate.set_defaults(dataset=None)
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")
    _add_streaming(evaluate, "an image or label map (or a pair of two sizes)",
                   "left out of the confusion matrix")
    _add_allow_nonfinite(evaluate)
    _add_device(evaluate)

    predict = commands.add_parser("predict", help="label PNGs and overlays for images")
    predict.add_argument("weights")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--model", choices=MODELS, default="fcn8")
    predict.add_argument("--window", type=int, default=4, metavar="N",
                         help="images held in memory at a time (default 4): read, predicted "
                              "(those of one size in one batch) and written before the next "
                              "N are read, so memory does not grow with the image count")
    _add_streaming(predict, "an image", "skipped (no outputs written for it)",
                   " (every image is read once before the network is built, so a bad "
                   "file stops the run before any output is written)")
    _add_allow_nonfinite(predict)
    _add_device(predict)

    convert = commands.add_parser("convert", help="pretrained weights to a Lasagne .npz")
    convert.add_argument("src")
    convert.add_argument("out")
    convert.add_argument("--from", dest="fmt", default="auto",
                         choices=("auto", *WEIGHT_FORMATS),
                         help="source format (default: from the file extension)")
    convert.add_argument("--model", choices=CONVERT_MODELS, default="fcn8")
    convert.add_argument("--n-classes", type=int, default=21)
    convert.add_argument("--exclude", nargs="+", default=None, metavar="SUBSTR",
                         help="skip source layers whose name contains one of these (e.g. "
                              "'score upscore' to take only the VGG body)")
    convert.add_argument("--no-strict", action="store_true",
                         help="allow a partial match: layers of the model that the file does "
                              "not cover keep their initial values (with a warning) and "
                              "layers of the file that the model lacks are skipped; by "
                              "default both are errors and nothing is written (layers named "
                              "by --exclude excepted)")
    convert.add_argument("--trust-pickle", action="store_true",
                         help="allow reading a pickle (it can run code): only for files you "
                              "trust")
    _add_allow_nonfinite(convert)

    dump = commands.add_parser("dump-activations", help="named layer outputs to one .npz")
    dump.add_argument("weights")
    dump.add_argument("image")
    dump.add_argument("out")
    dump.add_argument("--layers", nargs="+", default=None)
    dump.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    dump.add_argument("--model", choices=MODELS, default="fcn8")
    _add_allow_nonfinite(dump)
    _add_device(dump)
    return parser


def _inspect(args):
    import pytensor.tensor as pt

    from .models import BUILDERS
    from .models.summary import check_input_size, format_layer_table, layer_table

    for flag, value in (("--n-classes", args.n_classes), ("--batch", args.batch),
                        ("--channels", args.channels)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    _check_size_bound(args.size, "--size")
    check_input_size(*args.size, "--size")
    net = BUILDERS[args.model](args.channels, pt.tensor4("input"), n_classes=args.n_classes)
    shape = (args.batch, args.channels) + tuple(args.size)
    print(f"{args.model} with {args.n_classes} classes, input {'x'.join(map(str, shape))}")
    print(format_layer_table(layer_table(net, shape)))


def _device_count(text):
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got "
                                         f"{text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value}")
    return value


#: The ``fcn8 train`` flags (by ``args`` name) whose value, when the flag is not given,
#: comes from the recipe's ``defaults(dataset)`` (else from ``TrainingConfig``).
_DEFAULTED = ("learning_rate", "penal_cst", "num_epochs", "max_patience", "batch_size",
              "data_augmentation", "seed", "time_budget")


def _field_default(field):
    """A ``TrainingConfig`` field's default (a new value for a ``default_factory`` field)."""
    import dataclasses

    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _train_config(args):
    """The TrainingConfig of ``fcn8 train``: the flags given, the recipe's defaults for the
    others, the recipe's own flags (fields or ``options``)."""
    import dataclasses

    from .training import TrainingConfig, get_recipe

    recipe = get_recipe(args.model)
    dataset = _dataset_name(args, "-dataset", recipe)
    fields = {field.name: field for field in dataclasses.fields(TrainingConfig)}
    defaults = recipe.defaults(dataset)
    settings = {}
    for name in _DEFAULTED:
        value = getattr(args, name)
        if value is None:
            value = defaults[name] if name in defaults else _field_default(fields[name])
        settings[name] = value
    if args.time_budget == 0:  # turns a default budget off
        settings["time_budget"] = None
    settings["batch_size"] = tuple(settings["batch_size"])
    dataset_options = _dataset_options(args, dataset, "-dataset")
    own = dict(recipe.options_from_args(args))
    dataset_options.update(own.pop("dataset_options", {}))
    settings.update({name: value for name, value in own.items() if name in fields})
    options = {name: value for name, value in own.items() if name not in fields}
    return TrainingConfig(
        dataset=dataset, data_dir=args.data_dir,
        flip_every_image=args.flip_every_image, early_stop_class=args.early_stop_class,
        train_from_0_255=args.train_from_0_255,
        savepath=args.savepath or recipe.default_savepath(dataset), resume=args.resume,
        overwrite=args.overwrite, model=args.model, device=args.device,
        init_weights=args.init_weights, dataset_options=dataset_options,
        allow_nonfinite=args.allow_nonfinite, devices=args.devices, options=options,
        **settings)


def _start_processes(args, config):
    """Join a multi-process run (--coordinator, --num-processes, --process-id) before
    anything is compiled; without --devices it spans every process's devices."""
    flags = (args.coordinator, args.num_processes, args.process_id)
    if all(flag is None for flag in flags):
        return config
    if any(flag is None for flag in flags):
        raise ValueError("a multi-process run needs all of --coordinator HOST:PORT, "
                         "--num-processes P and --process-id I")
    if config.device == "cpu":
        raise ValueError("--coordinator (a multi-process run) needs --device jax or gpu")
    if config.seed is None:
        raise ValueError("a multi-process run needs --seed: every process must draw the "
                         "same initial weights, shuffles and augmentations")
    from .compile import initialize_distributed

    initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    if config.devices is None:
        config.devices = "all"
    return config


def _train(args):
    from .training import RunMismatch, Trainer, TrainingDiverged, check_settings, get_recipe

    config = _train_config(args)
    recipe = get_recipe(config.model)
    if config.dataset not in recipe.generated_datasets and config.data_dir is None:
        raise ValueError(f"-dataset {config.dataset} needs --data-dir (the dataset's root "
                         "folder)")
    # hyper-parameters, seed, augmentation, savepath: before any note
    check_settings(config, recipe)
    config = _start_processes(args, config)
    if config.device == "cpu":
        from .ops import coretype_advice

        advice = coretype_advice()
        if advice:
            print(f"fcn8 train: note: {advice}", file=sys.stderr)
    try:
        result = Trainer(config, recipe, log=lambda line: print(line, flush=True),
                         progress=not args.no_progress).train()
    except TrainingDiverged as error:
        print(f"fcn8 train: {error}", file=sys.stderr)
        return 3
    except (FileExistsError, RunMismatch) as error:  # the saved run is left as it was
        print(f"fcn8 train: {error}", file=sys.stderr)
        return 2
    return 130 if result["interrupted"] else 0


def _load_split(args):
    from .data import load_dataset

    dataset = _dataset_name(args, "--dataset")
    options = _dataset_options(args, dataset, "--dataset")
    if dataset != "synthetic" and args.data_dir is None:
        raise ValueError(f"--dataset {dataset} needs --data-dir (the dataset's root folder)")
    return load_dataset(dataset, args.data_dir, args.split, **options)


def _load_fcn_resnet_split(args):
    """The split ``fcn8 evaluate --model fcn_resnet50/101`` scores (default synthetic_voc)."""
    from .data import load_dataset
    from .training import get_recipe

    recipe = get_recipe(args.model)
    dataset = _dataset_name(args, "--dataset", recipe)
    options = _dataset_options(args, dataset, "--dataset")
    if dataset not in recipe.generated_datasets and args.data_dir is None:
        raise ValueError(f"--dataset {dataset} needs --data-dir (the dataset's root folder)")
    return load_dataset(dataset, args.data_dir, args.split, **options)


def _evaluate(args):
    from .inference import (check_n_classes, evaluate, fcn_resnet_predict_function,
                            load_model, predict_function)
    from .metrics import gluoncv_scores, torchvision_scores
    from .models.summary import check_input_size

    resnet = args.model in FCN_RESNET_MODELS
    if args.dataset is None:
        args.dataset = "synthetic_voc" if resnet else "synthetic"
    if resnet:
        # the whole image at its size, ImageNet-normalised: Gluon-CV's single-scale 'testval'
        dataset = _load_fcn_resnet_split(args)
        net, input_var = load_model(args.weights, args.model, n_classes=dataset.n_classes,
                                    allow_nonfinite=args.allow_nonfinite)
        predict, check_size = fcn_resnet_predict_function(net, input_var, args.device), None
    else:
        dataset = _load_split(args)
        check_n_classes(args.weights, dataset.class_names, f"dataset {dataset.name}",
                        args.model)
        net, input_var = load_model(args.weights, args.model,
                                    allow_nonfinite=args.allow_nonfinite)
        predict, check_size = predict_function(net, input_var, args.device), check_input_size
    skipped = []

    def skip(message):  # through tqdm, so that a progress bar is not broken
        from tqdm import tqdm

        skipped.append(None)
        tqdm.write(f"fcn8 evaluate: {message}", file=sys.stderr)

    confusion = evaluate(predict, dataset, progress=not (args.json or args.no_progress),
                         on_error=args.on_error, on_skip=skip, check_size=check_size)
    names = list(dataset.class_names)
    report = {
        "weights": args.weights, "dataset": dataset.name, "split": args.split,
        "classes": names, "per_class_iou": _floats(confusion.per_class_iou()),
        "mean_iou": float(confusion.mean_iou()),
        "pixel_accuracy": float(confusion.pixel_accuracy()),
        "mean_class_accuracy": float(confusion.mean_class_accuracy()),
        "frequency_weighted_iou": float(confusion.frequency_weighted_iou()),
        "confusion_matrix": confusion.matrix.astype(int).tolist(),
        "skipped": len(skipped),
    }
    if resnet:
        # Gluon-CV's pixAcc / mIoU (a class absent from labels and predictions counts 0)
        # and torchvision's mean IoU (NaN then); see fcn8_lasagne.metrics
        pix_acc, _, miou = gluoncv_scores(confusion)
        report.update({"pixAcc": pix_acc, "mIoU": miou,
                       "torchvision_mean_iou": _floats([torchvision_scores(confusion)[3]])[0]})
    status = 0
    if skipped:
        print(f"fcn8 evaluate: {len(skipped)} of {len(dataset)} pairs skipped (named above); "
              f"the scores are over the other {len(dataset) - len(skipped)}", file=sys.stderr)
        status = 1
    if args.json:
        print(json.dumps(report, indent=2))
        return status
    print(f"{'class':<16}{'IoU':>8}")
    for name, iou in zip(names, report["per_class_iou"]):
        print(f"{name:<16}{'nan' if iou is None else f'{iou:.4f}':>8}")
    keys = ("mean_iou", "pixel_accuracy", "mean_class_accuracy", "frequency_weighted_iou")
    if resnet:
        keys = ("mIoU", "pixAcc") + keys
    for key in keys:
        print(f"{key:<24}{report[key]:.4f}")
    print("confusion matrix (rows: true, columns: predicted)")
    width = max(len(n) for n in names) + 2
    print(" " * width + "".join(f"{n[:10]:>11}" for n in names))
    for name, row in zip(names, report["confusion_matrix"]):
        print(f"{name:<{width}}" + "".join(f"{v:>11}" for v in row))
    return status


def _floats(values):
    return [None if v != v else float(v) for v in values]


def _same_file(a, b):
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _file_id(path):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _check_predict_outputs(images, out, weights):
    """Refuse inputs whose outputs would overwrite each other or an input file.

    The image files are listed lazily (:func:`~fcn8_lasagne.inference.iter_image_files`);
    a stem and a file identity are kept per image (not its path, nor its pixels), and the
    files are listed again only to name the culprits of an error. Returns the image count.
    """
    from .inference import IMAGE_SUFFIXES, iter_image_files

    def stem_of(path):
        return os.path.splitext(os.path.basename(path))[0]

    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file, not a folder")
    stems, colliding, identities, count = set(), set(), set(), 0
    for path in iter_image_files(images):
        count += 1
        stem = stem_of(path)
        (colliding if stem in stems else stems).add(stem)
        identity = _file_id(path)
        if identity is not None:
            identities.add(hash(identity))
    if not count:
        raise ValueError(f"IMAGES: no images ({', '.join(IMAGE_SUFFIXES)}) found in "
                         f"{', '.join(images)}")
    if colliding:
        named = {}
        for path in iter_image_files(images):
            if stem_of(path) in colliding:
                named.setdefault(stem_of(path), []).append(path)
        raise ValueError(
            "images with the same name would write the same output files in --out: "
            + "; ".join(f"{stem}_labels.png/{stem}_overlay.png from {', '.join(paths)}"
                        for stem, paths in named.items())
            + " (predict them into separate --out folders)")
    for stem in sorted(stems):
        for suffix in ("labels", "overlay"):
            target = os.path.join(out, f"{stem}_{suffix}.png")
            identity = _file_id(target)
            source = None
            if identity is not None and hash(identity) in identities:
                source = next((path for path in iter_image_files(images)
                               if _file_id(path) == identity), None)
            if source is None and _same_file(target, weights):
                source = weights
            if source is not None:
                raise ValueError(f"output {target} would overwrite the input {source}")
    return count


def _predict(args):
    from tqdm import tqdm

    from .inference import (iter_image_files, load_model, predict_function, predict_images,
                            read_image)

    if args.window < 1:
        raise ValueError(f"--window must be a positive image count, got {args.window}")
    count = _check_predict_outputs(args.images, args.out, args.weights)
    progress = not args.no_progress

    def skip(message):  # through tqdm, so that a progress bar is not broken
        tqdm.write(f"fcn8 predict: {message}", file=sys.stderr)

    # Every image is read once (and dropped) before the network is built, so that a bad
    # file fails in a second, before any output is written; names only are kept.
    bad = set()
    for path in tqdm(iter_image_files(args.images), desc="check", total=count, unit="image",
                     disable=None if progress else True):
        notes = []
        try:
            read_image(path, notes=notes)
        except (ValueError, OSError) as error:
            if args.on_error == "fail":
                raise
            bad.add(path)
            skip(f"skipped {path}: {error}")
        for note in notes:
            tqdm.write(f"fcn8 predict: note: {note}", file=sys.stderr)
    net, input_var = load_model(args.weights, args.model,
                                allow_nonfinite=args.allow_nonfinite)
    n_classes = net["upsample"].num_filters
    predict = predict_function(net, input_var, args.device)
    written, skipped = predict_images(
        predict, (path for path in iter_image_files(args.images) if path not in bad),
        args.out, n_classes, window=args.window, on_error=args.on_error, on_skip=skip,
        log=tqdm.write, progress=progress, total=count - len(bad))
    skipped += len(bad)
    if skipped:
        print(f"fcn8 predict: {skipped} of {count} images skipped (named above); the "
              f"outputs of the other {written} are in {args.out}", file=sys.stderr)
        return 1
    return 0


def _convert(args):
    from .weights.convert import convert

    if args.n_classes < 1:
        raise ValueError(f"--n-classes must be a positive integer, got {args.n_classes}")
    if _same_file(args.out, args.src):
        raise ValueError(f"OUT {args.out} is the input SRC file: refusing to overwrite it")
    convert(args.src, args.out, args.fmt, model=args.model, n_classes=args.n_classes,
            trust_pickle=args.trust_pickle, exclude=args.exclude, strict=not args.no_strict,
            allow_nonfinite=args.allow_nonfinite)
    print(f"wrote {args.out}")
    return 0


def _dump_activations(args):
    from .inference import dump_activations, load_model, read_image

    for name, source in (("WEIGHTS", args.weights), ("IMAGE", args.image)):
        if _same_file(args.out, source):
            raise ValueError(f"OUT {args.out} is the input {name} file {source}: refusing to "
                             "overwrite it")
    if args.size is not None:
        _check_size_bound(args.size, "--size")
    image = read_image(args.image, args.size)  # checked before the network is built
    net, input_var = load_model(args.weights, args.model,
                                allow_nonfinite=args.allow_nonfinite)
    arrays = dump_activations(net, input_var, image, args.out, args.layers, args.device)
    for name, value in arrays.items():
        print(f"{name:<18}{'x'.join(map(str, value.shape))}")
    print(f"wrote {args.out}")
    return 0


_COMMANDS = {"inspect": _inspect, "train": _train, "evaluate": _evaluate, "predict": _predict,
             "convert": _convert, "dump-activations": _dump_activations}


def _train_model(argv):
    """The ``--model`` of an ``fcn8 train`` command line ('fcn8' if none or not a known
    model: the full parser then says what is wrong)."""
    from .training import RECIPES

    if not argv or argv[0] != "train":
        return "fcn8"
    reader = argparse.ArgumentParser(add_help=False)
    reader.add_argument("--model", default="fcn8")
    model = reader.parse_known_args(argv[1:])[0].model
    return model if model in RECIPES else "fcn8"


def main(argv=None):
    """Entry point of the ``fcn8`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_train_model(argv))
    except ImportError as error:  # a registered model whose recipe is not installed
        print(f"fcn8 train: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        if getattr(args, "precision", "float32") != "float32":
            if args.device == "cpu":
                raise ValueError(f"--precision {args.precision} needs --device jax or gpu; "
                                 "the CPU backend computes in float32")
            from .compile import set_matmul_precision

            set_matmul_precision(args.precision)
        return _COMMANDS[args.command](args) or 0
    except (ValueError, OSError, KeyError, RuntimeError, ImportError) as error:
        print(f"fcn8 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as error:
        # a truncated or corrupt .npz read with np.load outside weights.npz
        print(f"fcn8 {args.command}: error: truncated or corrupt .npz archive "
              f"({type(error).__name__}: {error})", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
