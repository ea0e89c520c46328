"""The FCN-8 recipe's default settings: the tutorial's, and those of the built-in data.

Keys are :class:`~fcn8_lasagne.training.TrainingConfig` fields; ``fcn8 train`` takes each
from here when its flag is not given.
"""

__all__ = ["TUTORIAL_DEFAULTS", "SYNTHETIC_DEFAULTS"]

#: The tutorial's command-line defaults (train_fcn8.py), used for real datasets (unseeded,
#: as the tutorial).
TUTORIAL_DEFAULTS = dict(learning_rate=1e-4, penal_cst=0.0, num_epochs=750, max_patience=100,
                         batch_size=(10, 1, 1),
                         data_augmentation={"crop_size": (224, 224), "horizontal_flip": True,
                                            "fill_mode": "constant"},
                         seed=None)

#: Defaults for the built-in synthetic data (:mod:`fcn8_lasagne.data.synthetic`), chosen so
#: that the whole run, start-up and the final test included, ends within ten minutes on any
#: 2-core CPU and still segments the polyps. The tutorial's optimiser, Adam, with a step size
#: of 3e-4 (the tutorial's 1e-4 took about twice as many steps to leave the uniform
#: prediction); one image per step (more Adam steps for the same compute); no crop (the
#: 64x80 frames are smaller than 224x224). The time budget (counted from the start of
#: training, so the compile is in it) stops a slow machine after fewer epochs: 540 s leaves
#: a minute for the imports, the test and a last epoch that runs a little longer than the one
#: before. Seeded, so that the main job starts from the same weights every time: from a
#: Glorot start the ReLU-ed score layers output zeros, and some draws leave the network at
#: the uniform prediction (loss ln 2) for longer than others.
SYNTHETIC_DEFAULTS = dict(learning_rate=3e-4, penal_cst=0.0, num_epochs=20, max_patience=100,
                          batch_size=(1, 4, 4),
                          data_augmentation={"horizontal_flip": True},
                          seed=1, time_budget=540.0)
