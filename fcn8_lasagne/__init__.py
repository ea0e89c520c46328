"""fcn8_lasagne: the deeplearning.net FCN-8 tutorial, faithful to Lasagne, on PyTensor."""

__version__ = "0.1.0"
