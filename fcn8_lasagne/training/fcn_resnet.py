"""Training recipe of the dilated-ResNet FCNs: ``fcn8 train --model fcn_resnet50|fcn_resnet101``.

What Gluon-CV's ``scripts/segmentation/train.py`` and torchvision's
``references/segmentation/train.py`` do, on this package's trainer:

* network: :func:`~fcn8_lasagne.models.fcn_resnet.buildFCNResNet` (``--variant gluoncv``: V1s
  body, corner-aligned resize; ``torchvision``: V1b body), with the aux head unless
  ``--no-aux``; randomly initialised (``--init-weights`` loads a weight file of this recipe);
* loss: :func:`~fcn8_lasagne.objectives.mix_softmax_cross_entropy`, main + ``--aux-weight``
  (0.5) x aux, each averaged over the non-void pixels;
* optimiser: ``--optimizer sgd`` (default): momentum 0.9, weight decay 1e-4 on every
  parameter, the poly schedule ``lr * (1 - iteration / total) ** 0.9`` set before every step,
  the heads' learning rate x ``--head-lr-mult`` (10; Gluon-CV: both heads, torchvision: the
  aux head only), with MXNet's momentum update for ``gluoncv`` and ``torch.optim.SGD``'s for
  ``torchvision`` (:func:`~fcn8_lasagne.updates.sgd_weight_decay`); ``--optimizer adam``:
  the FCN-8 tutorial's Adam at a constant rate;
* data: the training split through :class:`~fcn8_lasagne.data.scale_crop.RandomScaleCropFlip`
  (``--base-size``, ``--crop-size``), validation and test through
  :class:`~fcn8_lasagne.data.scale_crop.ResizeCenterCrop`, both ImageNet-normalised;
* batch normalisation: batch statistics in the training step (the running means and
  ``inv_std`` updated with momentum 0.1), running statistics in validation and test; they are
  parameters of the weight files;
* scores: the tutorial's loss, accuracy and per-class Jaccard, and beside them Gluon-CV's pixAcc
  and mIoU (:func:`~fcn8_lasagne.metrics.gluoncv_scores`), which is also the early-stopping
  score (``-early_stop_class`` selects one class's IoU instead).

The default dataset is ``synthetic_voc`` (generated offline); its defaults finish a two-epoch
run of ``fcn_resnet50`` on a two-core CPU in a few minutes.
"""

import numpy as np
import pytensor.tensor as pt

from .. import compile as compiling
from ..data import BatchIterator, load_dataset
from ..data.scale_crop import RandomScaleCropFlip, ResizeCenterCrop
from ..layers import get_all_params, get_output
from ..metrics import gluoncv_scores
from ..models.fcn_resnet import buildFCNResNet, fcn_resnet_head_names, fcn_resnet_output_layers
from ..objectives import mix_softmax_cross_entropy
from ..updates import PolyLearningRate, adam, sgd_weight_decay
from .recipe import Data, Model, Recipe, TrainingFunctions
from .run import RunFiles

__all__ = ["FCNResNetRecipe", "FCN_RESNET_DEFAULTS", "symbolic_confusion",
           "head_lr_multipliers", "fcn_resnet_epoch_line", "fcn_resnet_final_line"]

_BACKBONES = {"fcn_resnet50": "resnet50", "fcn_resnet101": "resnet101"}
VARIANTS = ("gluoncv", "torchvision")
OPTIMIZERS = ("sgd", "adam")

#: Shared settings per dataset. VOC: Gluon-CV's train.py (lr 0.01 from ImageNet, batch 16, 50
#: epochs); synthetic_voc: a short run on a two-core CPU.
FCN_RESNET_DEFAULTS = {
    "voc": dict(learning_rate=0.01, num_epochs=50, max_patience=50, batch_size=(16, 16, 16),
                seed=None),
    "synthetic_voc": dict(learning_rate=0.01, num_epochs=2, max_patience=10,
                          batch_size=(4, 4, 4), seed=1),
}
#: Own options per dataset (--base-size, --crop-size): 520 / 480 as both originals; 64 / 48 for
#: the 64x64 synthetic images.
_SIZES = {"voc": (520, 480), "sbd": (520, 480), "synthetic_voc": (64, 48)}


def symbolic_confusion(scores, labels, n_classes):
    """``(n_classes, n_classes)`` float32 counts ``[true, predicted]`` of a batch of score
    maps (argmax over axis 1); labels outside ``0 .. n_classes - 1`` (void) count nowhere."""
    classes = pt.arange(n_classes, dtype=labels.dtype)
    predicted = pt.argmax(scores, axis=1).reshape((-1,))
    true = labels.reshape((-1,))
    true_one_hot = pt.cast(pt.eq(true[:, None], classes[None, :]), "float32")
    predicted_one_hot = pt.cast(pt.eq(predicted[:, None], classes[None, :]), "float32")
    return pt.dot(true_one_hot.T, predicted_one_hot)


def head_lr_multipliers(net, variant, multiplier, params):
    """Parameter -> ``multiplier`` for the heads Gluon-CV (main and aux) or torchvision (aux
    only) train at ten times the base rate."""
    main, aux = fcn_resnet_head_names(variant)
    prefixes = (main, aux) if variant == "gluoncv" else (aux,)
    wanted = {id(param) for param in params}
    multipliers = {}
    for name, layer in net.items():
        if any(name.startswith(prefix + ".") for prefix in prefixes):
            for param in layer.get_params(trainable=True):
                if id(param) in wanted:
                    multipliers[param] = float(multiplier)
    return multipliers


def _jaccard_fields(prefix, per_class):
    return ", ".join(f"{prefix} class {k} {value:f}" for k, value in enumerate(per_class))


def fcn_resnet_epoch_line(epoch, cost_train, scores, pix_acc, miou, seconds):
    """The tutorial's epoch line with Gluon-CV's ``pixAcc val`` and ``mIoU val`` before
    ``took``."""
    return (f"EPOCH {epoch}: Avg epoch training cost train {cost_train:f}, cost val "
            f"{scores.loss:f}, acc val {scores.accuracy:f}, "
            f"{_jaccard_fields('jacc val', scores.jaccard_per_class)}, jacc val "
            f"{scores.jaccard:f}, pixAcc val {pix_acc:f}, mIoU val {miou:f} "
            f"took {seconds:f} s")


def fcn_resnet_final_line(scores, pix_acc, miou):
    """The tutorial's final line with ``pixAcc test`` and ``mIoU test`` at the end."""
    return (f"FINAL MODEL: err test {scores.loss:f}, acc test {scores.accuracy:f}, "
            f"{_jaccard_fields('jacc test', scores.jaccard_per_class)}, jacc test "
            f"{scores.jaccard:f}, pixAcc test {pix_acc:f}, mIoU test {miou:f}")


def _positive(value, flag):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{flag} must be a positive integer, got {value!r}")


def _non_negative(value, flag):
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{flag} must be a finite number >= 0, got {value!r}")


class FCNResNetRecipe(Recipe):
    """``fcn_resnet50`` / ``fcn_resnet101`` (see the module notes)."""

    datasets = ("synthetic_voc", "voc", "sbd")
    generated_datasets = ("synthetic_voc",)
    history_names = ("err_valid", "err_train", "acc_valid", "jacc_valid", "pixacc_valid",
                     "miou_valid")

    def __init__(self, name):
        super().__init__(name)
        if name not in _BACKBONES:
            raise ValueError(f"FCNResNetRecipe serves {', '.join(_BACKBONES)}, not {name!r}")
        self.backbone = _BACKBONES[name]
        self.files = RunFiles(best_weights=f"{name}_model_best.npz",
                              last_weights=f"{name}_model_last.npz",
                              best_errors=f"{name}_errors_best.npz",
                              last_errors=f"{name}_errors_last.npz",
                              log=f"{name}_output.log", curves=f"{name}_curves.png")
        self.schedule = None
        self.net = None

    # settings -----------------------------------------------------------------------------
    def defaults(self, dataset):
        return dict(FCN_RESNET_DEFAULTS.get(dataset, FCN_RESNET_DEFAULTS["voc"]))

    def add_arguments(self, parser):
        group = parser.add_argument_group(f"{self.name} (dilated-ResNet FCN)")
        group.add_argument("--variant", choices=VARIANTS, default="gluoncv",
                           help="gluoncv (default): ResNet V1s body, corner-aligned resize, "
                                "both heads at --head-lr-mult, MXNet's momentum update, "
                                "labels padded with background; torchvision: ResNet V1b "
                                "body, half-pixel resize, aux head only at --head-lr-mult, "
                                "torch.optim.SGD, labels padded with void")
        group.add_argument("--aux-weight", type=float, default=0.5,
                           help="weight of the aux head's loss (default 0.5, both originals' "
                                "training scripts)")
        group.add_argument("--no-aux", action="store_true",
                           help="no aux head (loss of the main head only)")
        group.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                           help="sgd (default): momentum, weight decay, poly schedule, head "
                                "lr multiplier; adam: the FCN-8 tutorial's Adam at a constant "
                                "-learning_rate (its value was 1e-4)")
        group.add_argument("--momentum", type=float, default=0.9)
        group.add_argument("--weight-decay", type=float, default=1e-4,
                           help="L2 weight decay of SGD on every parameter (default 1e-4)")
        group.add_argument("--head-lr-mult", type=float, default=10.0,
                           help="learning-rate multiplier of the heads (default 10)")
        group.add_argument("--poly-power", type=float, default=0.9,
                           help="lr = -learning_rate * (1 - iteration / total) ** power")
        group.add_argument("--base-size", type=int, default=None,
                           help="random rescale to [base/2, 2 base] (default 520; "
                                "synthetic_voc 64)")
        group.add_argument("--crop-size", type=int, default=None,
                           help="training crop and validation size (default 480; "
                                "synthetic_voc 48)")

    def options_from_args(self, args):
        return {"variant": args.variant, "aux_weight": args.aux_weight,
                "aux": not args.no_aux, "optimizer": args.optimizer,
                "momentum": args.momentum, "weight_decay": args.weight_decay,
                "head_lr_mult": args.head_lr_mult, "poly_power": args.poly_power,
                "base_size": args.base_size, "crop_size": args.crop_size}

    def _options(self, config):
        options = dict(config.options or {})
        base, crop = _SIZES.get(config.dataset, _SIZES["voc"])
        resolved = {"variant": "gluoncv", "aux_weight": 0.5, "aux": True, "optimizer": "sgd",
                    "momentum": 0.9, "weight_decay": 1e-4, "head_lr_mult": 10.0,
                    "poly_power": 0.9, "base_size": base, "crop_size": crop}
        resolved.update({key: value for key, value in options.items() if value is not None})
        return resolved

    def check_settings(self, config):
        options = self._options(config)
        if options["variant"] not in VARIANTS:
            raise ValueError(f"--variant must be one of {', '.join(VARIANTS)}, got "
                             f"{options['variant']!r}")
        if options["optimizer"] not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                             f"{options['optimizer']!r}")
        for key, flag in (("aux_weight", "--aux-weight"), ("momentum", "--momentum"),
                          ("weight_decay", "--weight-decay"),
                          ("head_lr_mult", "--head-lr-mult"), ("poly_power", "--poly-power")):
            _non_negative(float(options[key]), flag)
        _positive(options["base_size"], "--base-size")
        _positive(options["crop_size"], "--crop-size")
        if options["base_size"] < 2:
            raise ValueError("--base-size must be at least 2 (rescales are drawn from "
                             "[base/2, 2 base])")
        if config.data_augmentation:
            raise ValueError(f"-data_augmentation is FCN-8's; {self.name} trains on random "
                             "rescales, flips and crops set by --base-size and --crop-size")
        if config.penal_cst:
            raise ValueError(f"-penal_cst is FCN-8's L2 penalty; {self.name} uses "
                             "--weight-decay (SGD's decay of every parameter)")

    # data ---------------------------------------------------------------------------------
    def load_data(self, config):
        options = dict(config.dataset_options or {})
        options.setdefault("train_from_0_255", config.train_from_0_255)
        if options["train_from_0_255"]:
            raise ValueError(f"-train_from_0_255: {self.name} takes ImageNet-normalised "
                             "images in [0, 1]")
        splits = [load_dataset(config.dataset, config.data_dir, split, **options)
                  for split in ("train", "valid", "test")]
        return Data(*splits, n_classes=splits[0].n_classes,
                    void_labels=[splits[0].void_label], n_channels=3)

    def iterators(self, config, data):
        options = self._options(config)
        convention = options["variant"]
        train_transform = RandomScaleCropFlip(options["base_size"], options["crop_size"],
                                              convention=convention,
                                              void_label=data.void_labels[0])
        eval_transform = ResizeCenterCrop(options["base_size"], options["crop_size"],
                                          convention=convention)
        sizes = config.batch_size
        return (BatchIterator(data.train, sizes[0], shuffle=True, seed=config.seed,
                              augmentation=train_transform),
                BatchIterator(data.valid, sizes[1], augmentation=eval_transform),
                BatchIterator(data.test, sizes[2], augmentation=eval_transform))

    def describe_data(self, data, iterators):
        train_iter, val_iter, test_iter = iterators
        return [f"Batch. train: {len(train_iter)}, val {len(val_iter)}, test {len(test_iter)}",
                f"Nb of classes: {data.n_classes}",
                f"Nb. of input channels: {data.n_channels}"]

    def config_entries(self, data):
        return {"n_classes": data.n_classes, "void_labels": data.void_labels}

    # model --------------------------------------------------------------------------------
    def build_network(self, config, data):
        options = self._options(config)
        input_var = pt.tensor4("input_var")
        target_var = pt.itensor3("target_var")
        net = buildFCNResNet(data.n_channels, input_var, n_classes=data.n_classes,
                             backbone=self.backbone, variant=options["variant"],
                             aux=options["aux"])
        self.net = net
        return Model(fcn_resnet_output_layers(net), input_var, target_var, net)

    def batch_inputs(self, X, Y):
        return X, Y

    def build_functions(self, config, model, data):
        options = self._options(config)
        net = model.layers
        outputs = fcn_resnet_output_layers(net)
        void = data.void_labels[0]
        heads = [net["out"]] + ([net["aux"]] if "aux" in net else [])
        train_scores = get_output(heads)
        aux_scores = train_scores[1] if len(train_scores) > 1 else None
        loss = mix_softmax_cross_entropy(train_scores[0], aux_scores, model.target_var,
                                         options["aux_weight"], ignore_label=void)
        params = get_all_params(outputs, trainable=True)
        if options["optimizer"] == "sgd":
            convention = "gluoncv" if options["variant"] == "gluoncv" else "torch"
            self.schedule = PolyLearningRate(config.learning_rate, max_iterations=2,
                                             power=options["poly_power"],
                                             convention=convention)
            updates = sgd_weight_decay(
                loss, params, self.schedule.variable, momentum=options["momentum"],
                weight_decay=options["weight_decay"],
                lr_multipliers=head_lr_multipliers(net, options["variant"],
                                                   options["head_lr_mult"], params),
                convention="mxnet" if options["variant"] == "gluoncv" else "torch")
        else:
            updates = adam(loss, params, learning_rate=config.learning_rate)
        inputs = [model.input_var, model.target_var]
        parallel = ({} if config.devices is None
                    else dict(devices=config.devices, batch_inputs=inputs))
        train_fn = compiling.function(inputs, loss, updates=updates, device=config.device,
                                      **parallel)
        test_scores = get_output(heads, deterministic=True)
        test_loss = mix_softmax_cross_entropy(
            test_scores[0], test_scores[1] if len(test_scores) > 1 else None,
            model.target_var, options["aux_weight"], ignore_label=void)
        confusion = symbolic_confusion(test_scores[0], model.target_var, data.n_classes)
        true_positives = pt.diag(confusion)
        union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positives
        labelled = confusion.sum()
        accuracy = true_positives.sum() / pt.maximum(labelled, 1)
        scores_fn = compiling.function(
            inputs, [test_loss, accuracy, pt.stack([true_positives, union]), labelled],
            device=config.device, **parallel)
        self._labelled = 0.0

        def val_fn(*batch):
            # the trainer sums the totals; the labelled-pixel count (pixAcc's denominator)
            # is summed here, read and reset by the next epoch or final line
            loss_value, accuracy_value, totals, labelled_value = scores_fn(*batch)
            self._labelled += float(labelled_value)
            return loss_value, accuracy_value, totals
        # no predict_fn: the trainer does not use one, and each ResNet-50 function takes
        # minutes to compile (fcn8 evaluate / predict compile their own)
        return TrainingFunctions(train_fn, val_fn, None, params, updates)

    # schedule -----------------------------------------------------------------------------
    def on_iteration(self, trainer, iteration):
        if self.schedule is None:
            return
        total = max(trainer.config.num_epochs * len(trainer.train_iter), 2)
        self.schedule.max_iterations = total
        self.schedule.set_iteration(iteration)

    # scores, histories, lines -------------------------------------------------------------
    def _gluoncv_scores(self, scores):
        """Gluon-CV's ``(pixAcc, mIoU)`` of a pass, kept on ``scores``."""
        if not hasattr(scores, "pix_acc"):
            true_positives, union = np.asarray(scores.totals, dtype=np.float64)
            eps = np.spacing(1)
            scores.pix_acc = float(true_positives.sum() / (eps + self._labelled))
            scores.iou = true_positives / (eps + union)
            scores.miou = float(scores.iou.mean())
            self._labelled = 0.0
        return scores.pix_acc, scores.miou

    def early_stopping_score(self, config, scores):
        """Gluon-CV's mIoU (finite even when a class is absent), or class
        ``config.early_stop_class``'s IoU."""
        _, miou = self._gluoncv_scores(scores)
        if config.early_stop_class is None:
            return miou
        return float(scores.iou[config.early_stop_class])

    def history_values(self, train_metrics, scores):
        pix_acc, miou = self._gluoncv_scores(scores)
        return (scores.loss, train_metrics[0], scores.accuracy, scores.jaccard, pix_acc, miou)

    def epoch_line(self, epoch, train_metrics, scores, seconds):
        pix_acc, miou = self._gluoncv_scores(scores)
        return fcn_resnet_epoch_line(epoch, train_metrics[0], scores, pix_acc, miou, seconds)

    def final_line(self, scores):
        pix_acc, miou = self._gluoncv_scores(scores)
        return fcn_resnet_final_line(scores, pix_acc, miou)
