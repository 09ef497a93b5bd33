"""Typed configuration: defaults from the paper, TOML/JSON parsing, strict keys and types."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import Config, config_from_dict, config_to_dict, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_paper_defaults():
    c = Config()
    assert (c.optim.lr, c.optim.batch_size, c.optim.lr_decay, c.optim.decay_every_epochs) == (4e-4, 64, 0.5, 10)
    assert c.model.arch == "msma" and c.data.synthetic.max_yaw_deg == 90.0


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    cfg = load_config(path)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_toml_and_json(tmp_path):
    (tmp_path / "a.toml").write_text(
        '[model]\narch = "baseline"\n[optim]\nmax_steps = 5\n[loss]\ncoeff_groups = [1, 2, 3, 4, 5, 6]\n')
    cfg = load_config(tmp_path / "a.toml")
    assert cfg.model.arch == "baseline" and cfg.optim.max_steps == 5
    assert cfg.loss.coeff_groups == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    (tmp_path / "b.json").write_text('{"data": {"synthetic": {"max_yaw_deg": 45}}}')
    assert load_config(tmp_path / "b.json").data.synthetic.max_yaw_deg == 45.0


@pytest.mark.parametrize("values, message", [
    ({"optim": {"lr_rate": 1.0}}, "unknown key"),
    ({"model": {"arch": "resnet"}}, "must be one of"),
    ({"optim": {"batch_size": "8"}}, "integer"),
    ({"optim": {"batch_size": 2.5}}, "integer"),
    ({"run": {"amp": 1}}, "true or false"),
    ({"data": {"synthetic": {"p_blur": 2.0}}}, "probability"),
    ({"data": {"source": "folder"}}, "data.folder"),
    ({"loss": {"vertex": -1.0}}, "non-negative"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_bad_suffix(tmp_path):
    (tmp_path / "c.yaml").write_text("model: {}")
    with pytest.raises(ValueError, match="toml or .json"):
        load_config(tmp_path / "c.yaml")
