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

#: Defaults for the built-in synthetic data, sized so that the whole run takes under ten
#: minutes on a 2-core CPU: the tutorial's optimiser, one image per step (more Adam steps for
#: the same compute) and no crop (the 64x80 frames are smaller than 224x224). Seeded, so
#: that the main job starts from the same weights every time: from a Glorot start the
#: ReLU-ed score layers output zeros, and some draws leave the network at the uniform
#: prediction (loss ln 2) for several epochs while others learn from the first one.
SYNTHETIC_DEFAULTS = dict(learning_rate=1e-4, penal_cst=0.0, num_epochs=7, max_patience=100,
                          batch_size=(1, 4, 4),
                          data_augmentation={"horizontal_flip": True},
                          seed=1)
