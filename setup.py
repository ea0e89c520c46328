"""Install fcn8_lasagne: the FCN-8 tutorial on PyTensor with a Lasagne-compatible layer library."""
from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="fcn8_lasagne",
    version="0.1.0",
    description=(
        "A faithful, modern and fast port of the deeplearning.net FCN-8 tutorial "
        "(Theano/Lasagne) to PyTensor"
    ),
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["fcn8_lasagne", "fcn8_lasagne.*"]),
    package_data={"fcn8_lasagne.weights": ["*.proto"]},
    install_requires=[
        # Python 3.11 is served pytensor <= 3.1, Python 3.12+ gets 3.3.x.
        "pytensor>=3.0.7,<3.4",
        "numpy>=1.26",
        "scipy>=1.11",
        "pillow>=10",
        "tifffile>=2023.1",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={
        "jax": ["jax>=0.4.30", "jaxlib>=0.4.30"],
        # CUDA 13 (JAX's current default; the H100 runs in benchmarks/RESULTS.md), or 12
        "gpu": ["jax[cuda13]>=0.8"],
        "gpu-cuda12": ["jax[cuda12]>=0.4.30"],
        "torch": ["torch>=2.0"],
        "caffe": ["protobuf>=4.21"],
        "test": [
            "pytest>=7.3",
            "pytest-xdist>=3",
            "jax>=0.4.30",
            "jaxlib>=0.4.30",
            "protobuf>=4.21",
            "nbclient>=0.7",
            "nbformat>=5",
            "ipykernel>=6",
            "hypothesis>=6",
            # the cross-checks against PyTorch (conv, Caffe-semantics FCN, .pth files); the
            # CPU build is enough
            "torch>=2.0",
            # the reference fcn_resnet50/101 of tests/models/test_resnet_fcn.py (0.15 pairs
            # with torch 2.0)
            "torchvision>=0.15",
        ],
    },
    entry_points={"console_scripts": ["fcn8 = fcn8_lasagne.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
