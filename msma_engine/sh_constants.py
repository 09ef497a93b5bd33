"""Deep3DFaceRecon's spherical-harmonic constants, free of torch.

Kept apart from :mod:`msma_engine.shading` so the Blender extension's node group can use the
same numbers without importing torch.
"""

import math

__all__ = ["N_SH", "SH_INIT_DC", "A0", "A1", "A2", "C0", "C1", "C2"]

N_SH = 9
# Deep3DFaceRecon adds 0.8 to each channel's DC term so zero coefficients give even light.
SH_INIT_DC = 0.8

A0, A1, A2 = math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)
C0 = 1 / math.sqrt(4 * math.pi)
C1 = math.sqrt(3.0) / math.sqrt(4 * math.pi)
C2 = 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi)
