"""Machine adapters: beta-gated capacity for the machine decoding, fine-tuned on weights
whose bitstream and human decoding must stay exactly as they were."""
import os

import numpy as np
import pytest
import torch

from ugcodec import codec
from ugcodec.container import Container
from ugcodec.layers import MachineAdapter
from ugcodec.models import ModelConfig, UGHyperprior
from tools.training import TrainConfig, Trainer, coded_synthesis_input, model_from_checkpoint
from tools.export import export_adapted_bundle, export_weights
from ugcodec.weights import fingerprint_of, load_model, read_bundle

from conftest import TINY_CONFIG, make_photo_like
from test_training import clip_teacher, corpus  # noqa: F401  (fixtures)

ADAPTER_CONFIG = ModelConfig(**{**TINY_CONFIG.to_dict(), "lambdas": TINY_CONFIG.lambdas, "machine_adapter": True})


def _nudge(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


def test_adapter_is_gated_by_beta_and_starts_as_the_identity():
    torch.manual_seed(0)
    adapter = MachineAdapter(4)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(adapter(x, torch.ones(2)), x), "a new adapter changes nothing"
    _nudge(adapter)
    assert torch.equal(adapter(x, torch.zeros(2)), x), "beta = 0 is the identity, exactly"
    full = adapter(x, torch.ones(2))
    assert not torch.allclose(full, x)
    half = adapter(x, torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(half[0], (x + 0.5 * (full - x))[0])
    assert torch.equal(half[1], x[1]), "the gate is per sample"


def test_config_records_the_adapter_only_when_present():
    assert "machine_adapter" not in TINY_CONFIG.to_dict(), "old weights keep their config and fingerprint"
    data = ADAPTER_CONFIG.to_dict()
    assert data["machine_adapter"] is True
    assert ModelConfig.from_dict(data) == ADAPTER_CONFIG
    assert ModelConfig.from_dict(TINY_CONFIG.to_dict()).machine_adapter is False


def test_adapters_leave_the_human_decoding_bit_exact():
    torch.manual_seed(3)
    plain = UGHyperprior(TINY_CONFIG).eval()
    adapted = UGHyperprior(ADAPTER_CONFIG).eval()
    adapted.load_state_dict(plain.state_dict(), strict=False)
    _nudge(adapted.g_s.adapters)
    y_hat = torch.randn(1, TINY_CONFIG.M, 4, 5)
    with torch.no_grad():
        assert torch.equal(adapted.g_s(y_hat, torch.zeros(1)), plain.g_s(y_hat, torch.zeros(1)))
        assert not torch.allclose(adapted.g_s(y_hat, torch.ones(1)), plain.g_s(y_hat, torch.ones(1)))


def test_coded_synthesis_input_is_what_the_decoder_synthesises_from(tiny_model):
    image = make_photo_like(64, 128, seed=2)
    for quality in (1, 3):
        _, latents = codec.encode_latents(image, quality=quality, model=tiny_model)
        x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
        y_hat = coded_synthesis_input(tiny_model, tiny_model.network, x, torch.tensor([quality - 1]))
        for preference in (0.0, 1.0):
            pixels = tiny_model.network.g_s(y_hat, torch.tensor([preference]))
            pixels = pixels.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(pixels, codec.decode_pixels(latents, preference, tiny_model))


def _adapter_run_config(corpus: str, base: str, **settings) -> TrainConfig:
    settings = {"stage1_steps": 0, "stage2_steps": 2, "log_every": 1, "checkpoint_every": 2, **settings}
    return TrainConfig(model=ADAPTER_CONFIG, corpus=corpus, crop=64, batch=2, base_weights=base, **settings)


def _payload(data: bytes) -> "tuple[bytes, bytes]":
    container = Container.from_bytes(data)
    return container.z_stream, container.y_stream


def test_adapter_fine_tuning_trains_only_the_adapters_and_exports_base_plus_adapters(
    corpus, base_weights, tmp_path, clip_teacher  # noqa: F811 (fixtures)
):
    run_dir = str(tmp_path / "run")
    trainer = Trainer(_adapter_run_config(corpus, base_weights), run_dir, teacher=clip_teacher)
    base = load_model(base_weights)
    assert torch.equal(trainer.model.g_a[0].weight, base.network.g_a[0].weight), "starts from the base weights"
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    changed = {name for name, value in trainer.model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed and all(name.startswith("g_s.adapters.") for name in changed)

    trained = model_from_checkpoint(torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False))
    out = str(tmp_path / "adapted.pt")
    fingerprint = export_weights(trained, out, base=base_weights)
    adapted = load_model(out)
    assert adapted.fingerprint == fingerprint != base.fingerprint
    assert adapted.config.machine_adapter and adapted.model_id == base.model_id
    assert torch.equal(adapted.gains, base.gains)

    # Same bitstream; same human pixels; other machine pixels.
    image = make_photo_like(64, 64, seed=9)
    data_base, latents_base = codec.encode_latents(image, quality=2, model=base)
    data_adapted, latents_adapted = codec.encode_latents(image, quality=2, model=adapted)
    assert _payload(data_base) == _payload(data_adapted), "only the header's fingerprint differs"
    np.testing.assert_array_equal(
        codec.decode_pixels(latents_adapted, "human", adapted), codec.decode_pixels(latents_base, "human", base)
    )
    assert not np.array_equal(
        codec.decode_pixels(latents_adapted, "machine", adapted), codec.decode_pixels(latents_base, "machine", base)
    )


def test_export_refuses_a_model_that_is_not_base_plus_adapters(base_weights):
    bundle = read_bundle(base_weights)
    model = UGHyperprior(ADAPTER_CONFIG).eval()
    with pytest.raises(ValueError, match="outside its machine adapters"):
        export_adapted_bundle(model, bundle)  # random g_a, not the base's
    base = load_model(base_weights)
    model.load_state_dict(base.network.state_dict(), strict=False)
    assert fingerprint_of(export_adapted_bundle(model, bundle)) != fingerprint_of(bundle)
    with pytest.raises(ValueError, match="no machine adapters"):
        export_adapted_bundle(base.network, bundle)


def test_adapter_fine_tuning_checks_its_config(corpus, base_weights, tmp_path, clip_teacher):  # noqa: F811
    with pytest.raises(ValueError, match="stage1_steps = 0"):
        Trainer(_adapter_run_config(corpus, base_weights, stage1_steps=3), str(tmp_path / "a"), teacher=clip_teacher)
    plain = TrainConfig(model=TINY_CONFIG, corpus=corpus, crop=64, batch=2, stage1_steps=0, base_weights=base_weights)
    with pytest.raises(ValueError, match="machine_adapter"):
        Trainer(plain, str(tmp_path / "b"), teacher=clip_teacher)
    other = ModelConfig(**{**ADAPTER_CONFIG.to_dict(), "lambdas": (0.01, 0.02, 0.03), "M": 24})
    wrong_size = TrainConfig(model=other, corpus=corpus, crop=64, batch=2, stage1_steps=0, base_weights=base_weights)
    with pytest.raises(ValueError, match="differs"):
        Trainer(wrong_size, str(tmp_path / "c"), teacher=clip_teacher)


@pytest.mark.parametrize("name", ["adapter.toml", "adapter_objects.toml"])
def test_adapter_config_files_parse(name):
    path = os.path.join(os.path.dirname(__file__), "..", "tools", "configs", name)
    config = TrainConfig.from_toml(path)
    assert config.model.machine_adapter and config.stage1_steps == 0 and config.base_weights
