"""Tests for msma_engine.network.heads: the face model's layout, head routing (eq. 11), zero start."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.face_model import CoeffLayout
from msma_engine.network.heads import TRANS_UNIT, AttributeHead, AttributeHeads


class TestLayout:
    @pytest.mark.parametrize("sizes", [(80, 64, 80), (40, 52, 10), (5, 0, 3)])
    def test_heads_use_the_face_model_layout(self, sizes):
        heads = AttributeHeads((8, 16, 32), *sizes, hidden=4)
        assert heads.layout == CoeffLayout(*sizes)
        assert {name: h.out_features for name, h in heads.heads.items()} == {
            name: s.stop - s.start for name, s in CoeffLayout(*sizes).slices().items()}

    @pytest.mark.parametrize("bad", [(-1, 64, 80), (80, 64.0, 80), (True, 64, 80)])
    def test_rejects_bad_sizes(self, bad):
        with pytest.raises(ShapeError, match="must be a non-negative int, got"):
            AttributeHeads((8, 16, 32), *bad, hidden=4)


def _randomise_final_layers(heads: AttributeHeads) -> None:
    with torch.no_grad():
        for head in heads.heads.values():
            head.fc.weight.normal_()
            head.fc.bias.normal_()


class TestAttributeHeads:
    channels = (8, 16, 32)

    def _maps(self, batch=2):
        return [torch.randn(batch, c, s, s) for c, s in zip(self.channels, (8, 4, 2))]

    def test_untrained_output_is_zero(self):
        heads = AttributeHeads(self.channels, 10, 6, 4, hidden=8)
        out = heads(*self._maps())
        assert out.shape == (2, 10 + 6 + 4 + 33)
        assert torch.count_nonzero(out) == 0

    @pytest.mark.parametrize(
        ("changed_map", "groups"), [(0, {"gamma", "trans"}), (1, {"tex", "angles"}), (2, {"id", "exp"})]
    )
    def test_each_attribute_reads_its_scale(self, changed_map, groups):
        heads = AttributeHeads(self.channels, 10, 6, 4, hidden=8).eval()
        _randomise_final_layers(heads)
        maps = self._maps()
        base = heads(*maps)
        maps[changed_map] = maps[changed_map] + torch.randn_like(maps[changed_map])
        moved = heads(*maps)
        for name, sl in CoeffLayout(10, 6, 4).slices().items():
            differs = not torch.allclose(base[:, sl], moved[:, sl])
            assert differs == (name in groups), name

    def test_translation_in_metres(self):
        heads = AttributeHeads(self.channels, 2, 2, 2, hidden=8).eval()
        maps = self._maps(1)
        with torch.no_grad():
            heads.heads["trans"].fc.bias.copy_(torch.tensor([1.0, -2.0, 3.0]))
        out = heads(*maps)
        torch.testing.assert_close(out[0, -3:], torch.tensor([1.0, -2.0, 3.0]) * TRANS_UNIT)
        assert torch.count_nonzero(out[0, :-3]) == 0

    def test_zero_sized_group(self):
        heads = AttributeHeads(self.channels, 3, 0, 2, hidden=8)
        assert heads(*self._maps()).shape == (2, 3 + 0 + 2 + 33)

    def test_wrong_map_raises(self):
        heads = AttributeHeads(self.channels, 3, 3, 3, hidden=8)
        maps = self._maps()
        maps[1] = torch.randn(2, 15, 4, 4)
        with pytest.raises(ShapeError, match=r"F3 must be \(B, 16, H, W\), got \(2, 15, 4, 4\)"):
            heads(*maps)

    def test_single_head_gradients(self):
        head = AttributeHead(4, 3, hidden=5)
        x = torch.randn(2, 4, 3, 3, requires_grad=True)
        head(x).sum().backward()
        # Zero final layer: its weight gets a gradient, what lies below it not yet (Deep3DFaceRecon's start).
        assert head.fc.weight.grad.abs().sum() > 0 and head.fc.bias.grad.abs().sum() > 0
