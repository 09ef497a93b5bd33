"""The MSMA coefficient regressor, its baseline and light variants, and their weights files.

Public entry points: :func:`build_network`, :func:`load_weights`, :func:`save_weights`,
:func:`load_backbone_state_dict`; the output layout is the face model's
:class:`~msma_engine.face_model.CoeffLayout`. Sizes at 224² for BFM09
coefficients (257), multiply-adds of convolutions and linear layers:

============  ==========================  ==========  =======
arch          backbone                    parameters  MACs
============  ==========================  ==========  =======
msma          ResNet-50 + MSF + MAMA      110.0 M     14.15 G
msma_light    ResNet-18 + MSF + MAMA       16.8 M      2.49 G
baseline      ResNet-50 + linear           24.0 M      4.09 G
============  ==========================  ==========  =======
"""

from msma_engine.network.baseline import BaselineNet
from msma_engine.network.complexity import count_macs, count_parameters, macs_by_child
from msma_engine.network.factory import ARCHS, Arch, build_network
from msma_engine.network.msma import MSMANet
from msma_engine.network.regressor import CoefficientRegressor
from msma_engine.network.weights import (
    baseline_from_deep3d,
    load_backbone_state_dict,
    load_weights,
    read_weights_file,
    save_weights,
)

__all__ = [
    "ARCHS",
    "Arch",
    "BaselineNet",
    "CoefficientRegressor",
    "MSMANet",
    "baseline_from_deep3d",
    "build_network",
    "count_macs",
    "count_parameters",
    "load_backbone_state_dict",
    "load_weights",
    "macs_by_child",
    "read_weights_file",
    "save_weights",
]
