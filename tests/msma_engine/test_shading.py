import math

import torch

from msma_engine.shading import sh_basis, sh_irradiance


def test_zero_gamma_gives_even_light():
    n = torch.nn.functional.normalize(torch.randn(2, 50, 3), dim=-1)
    irr = sh_irradiance(n, torch.zeros(2, 27))
    # 0.8 * a0 * c0 = 0.8 * pi / sqrt(4 pi)
    torch.testing.assert_close(irr, torch.full_like(irr, 0.8 * math.pi / math.sqrt(4 * math.pi)))


def test_first_band_lights_from_the_front():
    gamma = torch.zeros(1, 27)
    gamma[0, [2, 11, 20]] = 0.5  # z-term of each channel
    front = sh_irradiance(torch.tensor([[[0.0, 0.0, 1.0]]]), gamma)
    back = sh_irradiance(torch.tensor([[[0.0, 0.0, -1.0]]]), gamma)
    assert (front > back).all()


def test_channels_are_independent():
    gamma = torch.zeros(1, 27)
    gamma[0, 9] = 1.0  # DC of green only
    irr = sh_irradiance(torch.tensor([[[0.0, 1.0, 0.0]]]), gamma)
    assert irr[0, 0, 1] > irr[0, 0, 0] == irr[0, 0, 2]


def test_basis_matches_deep3d_constants():
    b = sh_basis(torch.tensor([0.0, 0.0, 1.0]))
    a1c1 = 2 * math.pi / math.sqrt(3) * math.sqrt(3) / math.sqrt(4 * math.pi)
    assert abs(b[2].item() - a1c1) < 1e-6 and abs(b[1].item()) < 1e-7
