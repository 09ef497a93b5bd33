"""Tests for msma_engine.network.weights: weights files and torchvision-style backbone loading."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import WeightsError
from msma_engine.face_model import DEFAULT_MODEL_PATH, CoeffLayout
from msma_engine.network import (baseline_from_deep3d, build_network, load_backbone_state_dict, load_weights,
                                 save_weights)
from msma_engine.network.resnet import resnet18, resnet50


@pytest.fixture(scope="module")
def light_net():
    torch.manual_seed(0)
    net = build_network("msma_light", 6, 5, 4)
    with torch.no_grad():  # non-zero heads and BN statistics, so a round trip is a real test
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
    return net.eval()


@pytest.fixture
def saved(tmp_path, light_net):
    return save_weights(tmp_path / "w.pt", light_net, meta={"epoch": 3, "data": "synthetic"})


class TestRoundTrip:
    def test_same_outputs_and_meta(self, saved, light_net):
        net = load_weights(saved, "msma_light", 6, 5, 4)
        x = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(net(x), light_net(x))
        assert net.meta == {"epoch": 3, "data": "synthetic"} and not net.training

    def test_arch_and_sizes_from_file(self, saved):
        net = load_weights(saved)
        assert net.arch == "msma_light" and net.layout == CoeffLayout(6, 5, 4)

    def test_training_input_size_drives_crop_resize(self, tmp_path, light_net, saved):
        # Weights trained at 64 px: a 128 px crop is resized to 64 (antialiased bilinear,
        # as the trainer does) before the network; files without the key mean 224.
        assert load_weights(saved).input_size == 224
        net = load_weights(save_weights(tmp_path / "w64.pt", light_net, meta={"input_size": 64}))
        assert net.input_size == 64
        crops = torch.rand(2, 3, 128, 128)
        small = torch.nn.functional.interpolate(crops, size=(64, 64), mode="bilinear", align_corners=False,
                                                antialias=True)
        with torch.no_grad():
            torch.testing.assert_close(net.predict_crops(crops), light_net(small))
            assert not torch.allclose(net.predict_crops(crops), light_net(crops))

    def test_half_storage_halves_the_file_and_loads_as_float32(self, tmp_path, light_net, saved):
        half = save_weights(tmp_path / "h.pt", light_net, meta={"epoch": 3}, half=True)
        assert half.stat().st_size < 0.55 * saved.stat().st_size
        net = load_weights(half, "msma_light", 6, 5, 4)
        assert all(p.dtype == torch.float32 for p in net.parameters())
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            ref, got = light_net(x), net(x)
        # float16 keeps ~3 significant digits: outputs agree to a few parts per thousand.
        assert (got - ref).abs().max() <= 5e-3 * ref.abs().max() and not torch.equal(got, ref)

    def test_refuses_to_overwrite(self, saved, light_net):
        with pytest.raises(FileExistsError):
            save_weights(saved, light_net)
        save_weights(saved, light_net, overwrite=True)


def test_shipped_weights_load_for_the_default_head():
    """The file in assets/weights keeps loading: every tensor, for the shipped head's layout."""
    from pathlib import Path

    from msma_engine.model_file import load_face_model_data

    shipped = Path(__file__).resolve().parents[3] / "assets" / "weights" / "msma_light_default_head.pt"
    head = load_face_model_data(DEFAULT_MODEL_PATH)
    net = load_weights(shipped, "msma_light", head.n_id, head.n_exp, head.n_tex)
    assert net.layout == CoeffLayout(head.n_id, head.n_exp, head.n_tex)
    # independent of the loader: the raw state dict straight into a fresh network
    raw = torch.load(shipped, map_location="cpu", weights_only=True)
    assert raw["sizes"] == {"id": head.n_id, "exp": head.n_exp, "tex": head.n_tex}
    ref = build_network("msma_light", head.n_id, head.n_exp, head.n_tex)
    ref.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in raw["state_dict"].items()})
    x = torch.rand(1, 3, net.input_size, net.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, ref.eval()(x))
    assert out.shape == (1, net.layout.total) and torch.count_nonzero(out) > 0


class TestLoadErrors:
    def test_wrong_arch(self, saved):
        with pytest.raises(WeightsError, match="holds 'msma_light' weights, but the 'msma' network was requested"):
            load_weights(saved, "msma", 6, 5, 4)

    def test_wrong_sizes(self, saved):
        with pytest.raises(WeightsError, match=r"id/exp/tex = 6/5/4 .* current face model has 80/64/80"):
            load_weights(saved, "msma_light", 80, 64, 80)

    def test_missing_keys_listed(self, tmp_path, saved):
        payload = torch.load(saved, weights_only=True)
        del payload["state_dict"]["heads.heads.trans.fc.weight"]
        del payload["state_dict"]["backbone.layer1.0.conv1.weight"]
        payload["state_dict"]["extra.weight"] = torch.zeros(1)
        torch.save(payload, tmp_path / "broken.pt")
        with pytest.raises(WeightsError) as info:
            load_weights(tmp_path / "broken.pt")
        msg = str(info.value)
        assert "missing keys: backbone.layer1.0.conv1.weight, heads.heads.trans.fc.weight" in msg
        assert "unexpected keys: extra.weight" in msg

    def test_wrong_shape_listed(self, tmp_path, saved):
        payload = torch.load(saved, weights_only=True)
        payload["state_dict"]["heads.heads.id.fc.weight"] = torch.zeros(7, 128)
        torch.save(payload, tmp_path / "shape.pt")
        expected = r"wrong shapes: heads.heads.id.fc.weight \(7, 128\) \(expected \(6, 128\)\)"
        with pytest.raises(WeightsError, match=expected):
            load_weights(tmp_path / "shape.pt")

    def test_missing_file(self, tmp_path):
        with pytest.raises(WeightsError, match="not found: .*nothing.pt"):
            load_weights(tmp_path / "nothing.pt")

    def test_not_a_torch_file(self, tmp_path):
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(WeightsError, match="cannot read network weights"):
            load_weights(tmp_path / "junk.pt")

    def test_plain_state_dict_is_not_a_weights_file(self, tmp_path, light_net):
        torch.save(light_net.state_dict(), tmp_path / "sd.pt")
        with pytest.raises(WeightsError, match="not an MSMA weights file"):
            load_weights(tmp_path / "sd.pt")

    def test_unknown_arch_in_file(self, tmp_path, saved):
        payload = torch.load(saved, weights_only=True)
        payload["arch"] = "hrnet"
        torch.save(payload, tmp_path / "arch.pt")
        with pytest.raises(WeightsError, match="unknown architecture 'hrnet'"):
            load_weights(tmp_path / "arch.pt")


def _torchvision_style(factory, n_classes=1000):
    """A state dict laid out like torchvision.models.resnet*(): backbone keys + fc, random values."""
    torch.manual_seed(1)
    # A fresh initialisation, perturbed so every tensor (BN statistics too) differs from defaults
    # while a forward pass stays finite.
    sd = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in factory().state_dict().items()}
    sd.update({k: v.abs() + 0.5 for k, v in sd.items() if k.endswith("running_var")})
    in_features = 2048 if factory is resnet50 else 512
    sd["fc.weight"] = torch.randn(n_classes, in_features)
    sd["fc.bias"] = torch.randn(n_classes)
    return sd


@pytest.fixture(scope="module")
def r50_sd():
    return _torchvision_style(resnet50)


class TestBackboneLoading:
    @pytest.mark.parametrize("prefix", ["", "module.", "backbone."])
    def test_resnet50_keys_into_msma_and_baseline(self, r50_sd, prefix):
        sd = {prefix + k: v for k, v in r50_sd.items()}
        for arch in ("msma", "baseline"):
            net = build_network(arch, 80, 64, 80)
            load_backbone_state_dict(net, sd)
            own = net.backbone.state_dict()
            for k, v in own.items():
                assert torch.equal(v, r50_sd[k]), k

    def test_old_files_without_num_batches_tracked(self, r50_sd):
        sd = {k: v for k, v in r50_sd.items() if not k.endswith("num_batches_tracked")}
        net = resnet50()
        load_backbone_state_dict(net, sd)
        assert torch.equal(net.layer4[2].bn3.running_var, sd["layer4.2.bn3.running_var"])

    def test_deep3d_checkpoint_layout(self, r50_sd):
        # Deep3DFaceRecon's net_recon: backbone.* (no fc) and final_layers.*, all ignored but the backbone.
        sd = {"backbone." + k: v for k, v in r50_sd.items() if not k.startswith("fc.")}
        sd["final_layers.0.weight"] = torch.zeros(80, 2048, 1, 1)
        net = build_network("baseline", 80, 64, 80)
        load_backbone_state_dict(net, sd)
        assert torch.equal(net.backbone.conv1.weight, r50_sd["conv1.weight"])

    def test_resnet18_into_light(self):
        sd = _torchvision_style(resnet18)
        net = build_network("msma_light", 80, 64, 80)
        load_backbone_state_dict(net, sd)
        assert torch.equal(net.backbone.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])

    def test_resnet18_into_resnet50_lists_problems(self):
        expected = r"missing keys: layer1\.0\.conv3\.weight.*wrong shapes: layer1\.0\.conv1\.weight"
        with pytest.raises(WeightsError, match=expected):
            load_backbone_state_dict(resnet50(), _torchvision_style(resnet18))

    def test_missing_backbone_key(self, r50_sd):
        sd = dict(r50_sd)
        del sd["layer2.3.bn2.running_mean"]
        with pytest.raises(WeightsError, match=r"missing keys: layer2\.3\.bn2\.running_mean"):
            load_backbone_state_dict(resnet50(), sd)

    def test_not_a_resnet(self):
        with pytest.raises(WeightsError, match="no ResNet stem"):
            load_backbone_state_dict(resnet18(), {"encoder.weight": torch.zeros(3)})


class TestDeep3DImport:
    @staticmethod
    def _deep3d_state_dict(r50_sd):
        torch.manual_seed(2)
        sd = {"net_recon.backbone." + k: v for k, v in r50_sd.items() if not k.startswith("fc.")}
        for i, rows in enumerate((80, 64, 80, 3, 27, 2, 1)):
            sd[f"net_recon.final_layers.{i}.weight"] = 0.01 * torch.randn(rows, 2048, 1, 1)
            sd[f"net_recon.final_layers.{i}.bias"] = torch.randn(rows)
        return sd

    def test_matches_deep3d_forward(self, r50_sd):
        sd = self._deep3d_state_dict(r50_sd)
        net = baseline_from_deep3d(sd)
        assert net.layout == CoeffLayout(80, 64, 80)
        # Deep3DFaceRecon's own forward: raw [0, 1] RGB → ResNet-50 → avg pool → 1×1 convs → concat.
        ref_backbone = resnet50().eval()
        ref_backbone.load_state_dict({k: v for k, v in r50_sd.items() if not k.startswith("fc.")})
        images = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            pooled = ref_backbone(images)[-1].mean((2, 3), keepdim=True)
            ref = torch.cat([
                torch.nn.functional.conv2d(pooled, sd[f"net_recon.final_layers.{i}.weight"],
                                           sd[f"net_recon.final_layers.{i}.bias"]).flatten(1)
                for i in range(7)
            ], 1)
            out = net(images)
        torch.testing.assert_close(out[:, :-3], ref[:, :-3], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out[:, -3:], ref[:, -3:] * 0.1, rtol=1e-4, atol=1e-4)  # dm → m

    def test_missing_final_layer(self, r50_sd):
        sd = self._deep3d_state_dict(r50_sd)
        del sd["net_recon.final_layers.6.bias"]
        with pytest.raises(WeightsError, match="final layer '6.bias' is missing"):
            baseline_from_deep3d(sd)

    def test_unexpected_final_layer_rows(self, r50_sd):
        sd = self._deep3d_state_dict(r50_sd)
        sd["net_recon.final_layers.4.weight"] = torch.zeros(9, 2048, 1, 1)
        with pytest.raises(WeightsError, match=r"rows \[80, 64, 80, 3, 9, 2, 1\]"):
            baseline_from_deep3d(sd)


class TestContentValidation:
    """Issue 14.8: NaN tensors and absurd input sizes were accepted and failed later, per photo."""

    def test_nan_tensors_named(self, tmp_path, saved):
        payload = torch.load(saved, weights_only=True)
        payload["state_dict"]["heads.heads.id.fc.weight"][0, 0] = float("nan")
        torch.save(payload, tmp_path / "nan.pt")
        with pytest.raises(WeightsError, match="NaN or infinite values: heads.heads.id.fc.weight"):
            load_weights(tmp_path / "nan.pt")

    @pytest.mark.parametrize("size", [0, 100000, "abc", 224.5, True])
    def test_bad_input_size(self, tmp_path, saved, size):
        payload = torch.load(saved, weights_only=True)
        payload["meta"]["input_size"] = size
        torch.save(payload, tmp_path / "size.pt")
        with pytest.raises(WeightsError, match=f"input_size must be an integer within 32-1024.*got {size!r}"):
            load_weights(tmp_path / "size.pt")

    def test_interrupted_save_keeps_the_old_file(self, tmp_path, saved, light_net, monkeypatch):
        before = saved.read_bytes()

        def dies(obj, f, *a, **k):  # f: a path or an open binary file
            if hasattr(f, "write"):
                f.write(b"partial")
            else:
                open(f, "wb").write(b"partial")
            raise KeyboardInterrupt

        monkeypatch.setattr(torch, "save", dies)
        with pytest.raises(KeyboardInterrupt):
            save_weights(saved, light_net, overwrite=True)
        assert saved.read_bytes() == before and sorted(p.name for p in saved.parent.iterdir()) == ["w.pt"]
