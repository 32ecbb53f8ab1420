"""Machine adapters: beta-gated capacity for the machine decoding, fine-tuned on weights
whose bitstream and human decoding must stay exactly as they were."""
import os

import numpy as np
import pytest
import torch

from ugcodec import codec
from ugcodec.container import Container
from ugcodec.errors import ModelMismatchError, WeightsError
from ugcodec.layers import MachineAdapter
from ugcodec.models import ModelConfig, UGHyperprior
from tools.training import TrainConfig, Trainer, coded_synthesis_input, model_from_checkpoint
from tools.export import export_adapted_bundle, export_weights, without_machine_adapters
from ugcodec.weights import fingerprint_of, load_model, model_from_bundle, read_bundle

from conftest import TINY_CONFIG, make_photo_like
from test_training import clip_teacher, corpus  # noqa: F401  (fixtures)

ADAPTER_CONFIG = ModelConfig(**{**TINY_CONFIG.to_dict(), "lambdas": TINY_CONFIG.lambdas, "machine_adapter": True})
#: Bottleneck adapters: 1x1 - 3x3 - 1x1 over 2 inner channels.
NARROW_CONFIG = ModelConfig(**{**ADAPTER_CONFIG.to_dict(), "lambdas": TINY_CONFIG.lambdas, "adapter_width": 2})
BOTH_FORMS = pytest.mark.parametrize("config", [ADAPTER_CONFIG, NARROW_CONFIG], ids=["full", "bottleneck"])


def _nudge(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("width", [0, 2])
def test_adapter_is_gated_by_beta_and_starts_as_the_identity(width):
    torch.manual_seed(0)
    adapter = MachineAdapter(4, width)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(adapter(x, torch.ones(2)), x), "a new adapter changes nothing"
    _nudge(adapter)
    assert torch.equal(adapter(x, torch.zeros(2)), x), "beta = 0 is the identity, exactly"
    full = adapter(x, torch.ones(2))
    assert not torch.allclose(full, x)
    half = adapter(x, torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(half[0], (x + 0.5 * (full - x))[0])
    assert torch.equal(half[1], x[1]), "the gate is per sample"


@pytest.mark.parametrize("width", [0, 2])
def test_adapter_codes_in_place_what_it_trains_out_of_place(width):
    torch.manual_seed(0)
    adapter = MachineAdapter(4, width)
    _nudge(adapter)
    x = torch.randn(2, 4, 6, 6)
    gate = torch.tensor([1.0, 0.3])
    training = adapter(x, gate)
    assert training.requires_grad
    kept = x.clone()
    with torch.no_grad():
        coding = adapter(x, gate)
    assert torch.equal(coding, training.detach())
    assert torch.equal(x, kept), "the coding path leaves its input alone"


def test_bottleneck_adapter_is_cheaper_and_has_its_own_parameters():
    full, narrow = MachineAdapter(16), MachineAdapter(16, 4)
    assert [name for name, _ in full.named_parameters()] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    assert [name for name, _ in narrow.named_parameters()] == [
        f"{layer}.{kind}" for layer in ("reduce", "conv", "expand") for kind in ("weight", "bias")
    ]
    assert narrow.reduce.weight.shape == (4, 16, 1, 1) and narrow.expand.weight.shape == (16, 4, 1, 1)
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in full.parameters()) / 4
    with pytest.raises(ValueError, match="adapter width"):
        MachineAdapter(16, -1)


def test_config_records_the_adapter_only_when_present():
    assert "machine_adapter" not in TINY_CONFIG.to_dict(), "old weights keep their config and fingerprint"
    data = ADAPTER_CONFIG.to_dict()
    assert data["machine_adapter"] is True
    assert "adapter_width" not in data, "full adapters keep the config they had"
    assert ModelConfig.from_dict(data) == ADAPTER_CONFIG
    assert ModelConfig.from_dict(TINY_CONFIG.to_dict()).machine_adapter is False
    assert NARROW_CONFIG.to_dict()["adapter_width"] == 2
    assert ModelConfig.from_dict(NARROW_CONFIG.to_dict()) == NARROW_CONFIG
    with pytest.raises(ValueError, match="needs machine_adapter"):
        ModelConfig(adapter_width=8)
    with pytest.raises(ValueError, match="adapter_width"):
        ModelConfig(machine_adapter=True, adapter_width=-1)


@BOTH_FORMS
def test_adapters_leave_the_human_decoding_bit_exact(config):
    torch.manual_seed(3)
    plain = UGHyperprior(TINY_CONFIG).eval()
    adapted = UGHyperprior(config).eval()
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
            np.testing.assert_array_equal(pixels, codec.decode_pixels(latents, preference, tiny_model, precision="float32"))


def _adapter_run_config(corpus: str, base: str, model: ModelConfig = ADAPTER_CONFIG, **settings) -> TrainConfig:
    settings = {"stage1_steps": 0, "stage2_steps": 2, "log_every": 1, "checkpoint_every": 2, **settings}
    return TrainConfig(model=model, corpus=corpus, crop=64, batch=2, base_weights=base, **settings)


def _payload(data: bytes) -> "tuple[bytes, bytes]":
    container = Container.from_bytes(data)
    return container.z_stream, container.y_stream


@BOTH_FORMS
def test_adapter_fine_tuning_trains_only_the_adapters_and_exports_base_plus_adapters(
    config, corpus, base_weights, tmp_path, clip_teacher  # noqa: F811 (fixtures)
):
    run_dir = str(tmp_path / "run")
    trainer = Trainer(_adapter_run_config(corpus, base_weights, config), run_dir, teacher=clip_teacher)
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
    assert adapted.config == config and adapted.model_id == base.model_id
    assert torch.equal(adapted.gains, base.gains)

    # Same bitstream; same human pixels; other machine pixels.
    image = make_photo_like(64, 64, seed=9)
    data_base, latents_base = codec.encode_latents(image, quality=2, model=base)
    data_adapted, latents_adapted = codec.encode_latents(image, quality=2, model=adapted)
    assert _payload(data_base) == _payload(data_adapted), "only the header's fingerprint differs"

    # The adapted weights decode the base's files (also_decodes); not the other way round.
    assert adapted.also_decodes == {base.fingerprint}
    np.testing.assert_array_equal(
        np.asarray(codec.decode(data_base, "human", model=adapted)), np.asarray(codec.decode(data_base, "human", model=base))
    )
    with pytest.raises(ModelMismatchError):
        codec.decode(data_adapted, "human", model=base)
    np.testing.assert_array_equal(
        codec.decode_pixels(latents_adapted, "human", adapted), codec.decode_pixels(latents_base, "human", base)
    )
    assert not np.array_equal(
        codec.decode_pixels(latents_adapted, "machine", adapted), codec.decode_pixels(latents_base, "machine", base)
    )


def test_adapter_levels_train_those_adapters_and_leave_the_others_the_identity(
    corpus, base_weights, tmp_path, clip_teacher  # noqa: F811 (fixtures)
):
    trainer = Trainer(_adapter_run_config(corpus, base_weights, adapter_levels=[0]), str(tmp_path / "run"),
                      teacher=clip_teacher)
    adapters = trainer.model.g_s.adapters
    for index in (1, 2):
        assert adapters[index].is_identity(), "the untrained levels start as the identity"
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    changed = {name for name, value in trainer.model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed and all(name.startswith("g_s.adapters.0.") for name in changed)
    with pytest.raises(ValueError, match="adapter_levels"):
        Trainer(_adapter_run_config(corpus, base_weights, adapter_levels=[3]), str(tmp_path / "bad"), teacher=clip_teacher)


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


@pytest.mark.parametrize("name", ["adapter.toml", "adapter_objects.toml", "adapter_wide.toml"])
def test_adapter_config_files_parse(name):
    path = os.path.join(os.path.dirname(__file__), "..", "tools", "configs", name)
    config = TrainConfig.from_toml(path)
    assert config.model.machine_adapter and config.stage1_steps == 0 and config.base_weights


def test_also_decodes_lists_the_base_and_its_own_list(base_weights):
    bundle = read_bundle(base_weights)
    model = UGHyperprior(ADAPTER_CONFIG).eval()
    model.load_state_dict(load_model(base_weights).network.state_dict(), strict=False)
    first = export_adapted_bundle(model, bundle)
    assert first["also_decodes"] == [fingerprint_of(bundle).hex()]
    second = export_adapted_bundle(model, first)
    assert second["also_decodes"] == sorted({fingerprint_of(bundle).hex(), fingerprint_of(first).hex()})
    # The bundle before the adapters, found again from the adapted one alone.
    assert fingerprint_of(without_machine_adapters(first)) == fingerprint_of(bundle)
    assert fingerprint_of(without_machine_adapters(second)) == fingerprint_of(bundle), "adapters trained again"
    assert without_machine_adapters(bundle) is None
    assert without_machine_adapters({**first, "also_decodes": ["00" * 8]}) is None, "not adapters on a listed base"


@pytest.mark.parametrize("bad", ["fd4f61abcaf2c752", ["fd4f61"], [12], ["zz" * 8]])
def test_weights_with_a_malformed_also_decodes_are_refused(base_weights, bad):
    bundle = {**read_bundle(base_weights), "also_decodes": bad}
    with pytest.raises(WeightsError, match="malformed"):
        model_from_bundle(bundle, "bad.pt")
