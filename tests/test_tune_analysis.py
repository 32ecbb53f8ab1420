"""Training g_a on for a frozen decoder (tools.tune_analysis)."""
import numpy as np
import pytest
import torch

from ugcodec import codec
from ugcodec.weights import load_model, read_bundle
from tools.export import export_analysis_bundle
from tools.training import coded_synthesis_input
from tools.tune_analysis import AnalysisTuneConfig, AnalysisTuner, coded_rate_distortion, main

from conftest import make_photo_like, write_photos


@pytest.fixture()
def corpus(tmp_path):
    return write_photos(tmp_path / "corpus", 2, 96, 120)


def _crops(count: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.stack([make_photo_like(64, 64, seed=10 + i) for i in range(count)])).permute(0, 3, 1, 2).float() / 255


def test_the_scored_decoding_is_the_coders(base_weights):
    coder = load_model(base_weights)
    x, quality = _crops(), torch.tensor([0, 2])
    scored = coded_rate_distortion(coder, coder.network.g_a, x, quality)
    with torch.no_grad():
        y_hat = coded_synthesis_input(coder, coder.network, x, quality)
        x_hat = coder.network.g_s(y_hat, torch.zeros(2))
    expected = (255.0**2) * (x_hat - x).square().flatten(1).mean(dim=1)
    torch.testing.assert_close(scored["distortion"].detach(), expected, rtol=1e-4, atol=1e-3)
    lambdas = torch.tensor([coder.rate_weight(1), coder.rate_weight(3)])
    torch.testing.assert_close(scored["loss"].detach(), scored["bpp"].detach() + lambdas * expected, rtol=1e-4, atol=1e-3)
    assert (scored["bpp"] > 0).all()


def test_gradients_reach_g_a_only(base_weights):
    coder = load_model(base_weights)
    coder.network.requires_grad_(False)
    g_a = coder.network.g_a.requires_grad_(True)
    coded_rate_distortion(coder, g_a, _crops(), torch.tensor([1, 0]))["loss"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g_a.parameters())
    assert all(p.grad is None for p in coder.network.g_s.parameters())
    assert all(p.grad is None for p in coder.network.h_a.parameters())


def test_a_run_trains_g_a_resumes_and_exports_weights_that_decode_the_bases_files(base_weights, corpus, tmp_path):
    run = str(tmp_path / "run")
    config = AnalysisTuneConfig(base=base_weights, corpus=corpus, crop=64, steps=2, batch=2, lr=1e-2, log_every=1,
                                validation=4)
    tuner = AnalysisTuner(config, run)
    assert tuner.validate() == {"validation_gain": 0.0, "validation_bpp_change": 0.0, "validation_human_db": 0.0}
    tuner.train()
    assert tuner.validate()["validation_gain"] != 0.0
    assert tuner.step == 2
    base = load_model(base_weights).network
    changed = [name for name, value in tuner.g_a.state_dict().items() if not torch.equal(value, base.g_a.state_dict()[name])]
    assert changed, "g_a did not train"
    assert AnalysisTuner(config, run).step == 2, "a second tuner resumes from the checkpoint"

    candidate = str(tmp_path / "candidate.pt")
    assert main(["--run", run, "--export", candidate]) == 0
    tuned = load_model(candidate)
    assert load_model(base_weights).fingerprint in tuned.also_decodes
    for name, value in tuned.network.state_dict().items():
        if not name.startswith("g_a."):
            assert torch.equal(value, base.state_dict()[name]), name
    image = make_photo_like(64, 96, seed=3)
    base_file = codec.encode(image, quality=2, model=load_model(base_weights))
    np.testing.assert_array_equal(np.asarray(codec.decode(base_file, model=tuned)),
                                  np.asarray(codec.decode(base_file, model=load_model(base_weights))))
    assert codec.encode(image, quality=2, model=tuned) != base_file, "the new g_a codes other symbols"

    compact = str(tmp_path / "compact.pt")
    assert main(["--run", run, "--save-compact", compact]) == 0
    elsewhere = AnalysisTuner(config, str(tmp_path / "elsewhere"))
    elsewhere.load(compact)
    assert elsewhere.step == 2
    for name, value in elsewhere.g_a.state_dict().items():
        torch.testing.assert_close(value, tuner.g_a.state_dict()[name], rtol=1e-3, atol=1e-3)


def test_analysis_export_refuses_other_decoders(base_weights):
    network = load_model(base_weights).network
    with torch.no_grad():
        next(network.g_s.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="outside g_a"):
        export_analysis_bundle(network, read_bundle(base_weights))


def test_crop_must_be_a_multiple_of_64():
    with pytest.raises(ValueError, match="multiple of 64"):
        AnalysisTuneConfig(crop=100)
