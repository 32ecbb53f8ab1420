"""Bottleneck residual blocks in g_s: a cheaper synthesis, distilled from a weights
file's own, that decodes the same bitstreams."""
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ugcodec import codec
from ugcodec.container import Container
from ugcodec.layers import BottleneckResidualBlock
from ugcodec.models import ModelConfig, UGHyperprior
from ugcodec.weights import fingerprint_of, load_model, read_bundle
from tools.distill_synthesis import DistillConfig, Distiller, block_features, load_student, main, student_network
from tools.export import export_synthesis_bundle, export_weights
from tools.training import TrainConfig, Trainer

from conftest import TINY_CONFIG, make_photo_like
from test_training import clip_teacher  # noqa: F401  (fixture)

BOTTLENECK_CONFIG = ModelConfig(**{**TINY_CONFIG.to_dict(), "lambdas": TINY_CONFIG.lambdas, "bottlenecks": (0, 4, 2)})


def test_config_records_bottlenecks_only_when_present():
    assert "bottlenecks" not in TINY_CONFIG.to_dict(), "old weights keep their config and fingerprint"
    data = BOTTLENECK_CONFIG.to_dict()
    assert data["bottlenecks"] == [0, 4, 2]
    assert ModelConfig.from_dict(data) == BOTTLENECK_CONFIG
    assert ModelConfig.from_dict(json.loads(json.dumps(data))) == BOTTLENECK_CONFIG
    assert ModelConfig.from_dict(TINY_CONFIG.to_dict()).bottlenecks == (0, 0, 0)
    assert ModelConfig(bottlenecks=[0, 0, 0]).to_dict() == ModelConfig().to_dict()
    for bad in ((0, 4), (0, -1, 2), (0, 1.5, 2)):
        with pytest.raises(ValueError, match="bottlenecks"):
            ModelConfig(bottlenecks=bad)


def test_model_builds_the_configured_blocks():
    model = UGHyperprior(BOTTLENECK_CONFIG)
    kinds = [type(block).__name__ for block in model.g_s.blocks]
    assert kinds == ["ShiftedResidualBlock", "BottleneckResidualBlock", "BottleneckResidualBlock"]
    assert model.g_s.blocks[1].conv.out_channels == 4 and model.g_s.blocks[2].conv.out_channels == 2


def test_bottleneck_block_shapes_and_zero_shifts():
    torch.manual_seed(0)
    block = BottleneckResidualBlock(6, 3, embedding_dim=5)
    x, embedding = torch.randn(2, 6, 7, 9), torch.randn(2, 5)
    out = block(x, embedding)
    assert out.shape == x.shape and not torch.allclose(out, x)
    # Fresh shifts are zero: the embedding (so beta) does not matter yet.
    assert torch.equal(block(x, torch.randn(2, 5)), out)
    with torch.no_grad():  # the in-place coding path computes the same
        torch.testing.assert_close(block(x, embedding), out)
    with pytest.raises(ValueError):
        BottleneckResidualBlock(6, 0, embedding_dim=5)


def test_fresh_bottleneck_synthesis_decodes_both_preferences_alike():
    torch.manual_seed(1)
    model = UGHyperprior(BOTTLENECK_CONFIG).eval()
    y_hat = torch.randn(1, BOTTLENECK_CONFIG.M, 3, 4)
    with torch.no_grad():
        assert torch.equal(model.g_s(y_hat, torch.zeros(1)), model.g_s(y_hat, torch.ones(1)))


def test_weights_with_bottlenecks_load_and_decode(tmp_path):
    torch.manual_seed(2)
    path = str(tmp_path / "bottleneck.pt")
    fingerprint = export_weights(UGHyperprior(BOTTLENECK_CONFIG).eval(), path)
    model = load_model(path)
    assert model.config == BOTTLENECK_CONFIG and model.fingerprint == fingerprint
    assert isinstance(model.network.g_s.blocks[2], BottleneckResidualBlock)
    image = make_photo_like(64, 96, seed=3)
    data = codec.encode(image, quality=2, model=model)
    assert np.asarray(codec.decode(data, model=model)).shape == image.shape


@pytest.fixture()
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray(make_photo_like(96, 120, seed=seed)).save(folder / f"image{seed}.png")
    return str(folder)


def test_student_copies_the_teacher_but_the_replaced_blocks(base_weights):
    coder = load_model(base_weights)
    student = student_network(coder, (0, 4, 2))
    assert student.config == BOTTLENECK_CONFIG
    teacher_state = coder.network.state_dict()
    for name, value in student.state_dict().items():
        if not name.startswith(("g_s.blocks.1.", "g_s.blocks.2.")):
            assert torch.equal(value, teacher_state[name]), name
    y_hat = torch.randn(1, TINY_CONFIG.M, 2, 3)
    with torch.no_grad():
        features = block_features(coder.network.g_s, y_hat, torch.zeros(1), [1, 2])
    assert sorted(features) == [1, 2]
    assert features[2][0].shape == (1, TINY_CONFIG.N, 16, 24)


def test_distillation_runs_resumes_and_exports_the_same_bitstream(corpus, base_weights, tmp_path):
    run = str(tmp_path / "run")
    config = DistillConfig(
        bottlenecks=(0, 4, 2), base=base_weights, corpus=corpus, crop=64, pool=3, feature_pool=2,
        quality_weights=(1, 1, 2), feature_steps=2, feature_batch=2, steps=2, batch=2, log_every=1, checkpoint_every=1,
    )
    distiller = Distiller(config, run)
    distiller.build_pool()
    distiller.train(max_seconds=0.0)  # stops at once with a checkpoint
    resumed = Distiller(config, run)
    assert resumed.phase == "features"
    resumed.build_pool()
    resumed.train()
    assert resumed.phase == "finetune" and resumed.step == 2
    records = [json.loads(line) for line in open(os.path.join(run, "log.jsonl"))]
    assert {record["phase"] for record in records} == {"pool", "features", "finetune"}

    out = str(tmp_path / "student.pt")
    assert main(["--run", run, "--export", out]) == 0
    base, student = load_model(base_weights), load_model(out)
    assert student.config.bottlenecks == (0, 4, 2) and student.fingerprint != base.fingerprint
    image = make_photo_like(64, 64, seed=9)
    data_base, latents_base = codec.encode_latents(image, quality=2, model=base)
    data_student, latents_student = codec.encode_latents(image, quality=2, model=student)
    payload = lambda data: (Container.from_bytes(data).z_stream, Container.from_bytes(data).y_stream)  # noqa: E731
    assert payload(data_base) == payload(data_student), "only the header's fingerprint differs"
    pixels = codec.decode_pixels(latents_student, "human", student)
    assert pixels.shape == image.shape
    trained, _ = load_student(os.path.join(run, "checkpoint.pt"))
    assert torch.equal(trained.g_s.blocks[2].conv.weight.half().float(), student.network.g_s.blocks[2].conv.weight)


def test_without_replaced_blocks_the_finetune_trains_the_teachers_own_g_s(corpus, base_weights, tmp_path):
    with pytest.raises(ValueError, match="no level is replaced"):
        DistillConfig(bottlenecks=(0, 0, 0), base=base_weights, corpus=corpus, tune="blocks")
    config = DistillConfig(
        bottlenecks=(0, 0, 0), base=base_weights, corpus=corpus, crop=64, pool=3, feature_pool=2,
        quality_weights=(1, 1, 2), steps=2, batch=2, log_every=1, checkpoint_every=1, teacher_weight=0.0,
    )
    distiller = Distiller(config, str(tmp_path / "run"))
    teacher = load_model(base_weights)
    assert distiller.phase == "finetune", "no new blocks: nothing to match first"
    for name, value in distiller.student.g_s.state_dict().items():
        assert torch.equal(value, teacher.network.g_s.state_dict()[name]), name
    distiller.build_pool()
    assert not any(key.startswith("in") for key in distiller._load_pool())
    distiller.train()
    assert distiller.step == 2
    changed = [name for name, value in distiller.student.g_s.state_dict().items()
               if not torch.equal(value, teacher.network.g_s.state_dict()[name])]
    assert any(name.startswith("g_s.up.") or name.startswith("up.") for name in changed), changed

    out = str(tmp_path / "student.pt")
    assert main(["--run", str(tmp_path / "run"), "--export", out]) == 0
    student = load_model(out)
    assert student.config == teacher.config and student.fingerprint != teacher.fingerprint
    assert teacher.fingerprint in student.also_decodes, "it decodes the files of the weights it started from"


def test_a_compact_checkpoint_resumes_the_run_elsewhere(corpus, base_weights, tmp_path):
    common = ["--corpus", corpus, "--crop", "64", "--pool", "2", "--batch", "2", "--teacher-weight", "0"]
    first = str(tmp_path / "first")
    assert main(["--run", first, "--bottlenecks", "0,0,0", "--base", base_weights, "--steps", "2"] + common) == 0
    compact = str(tmp_path / "compact.pt")
    assert main(["--run", first, "--save-compact", compact]) == 0
    state = torch.load(compact, weights_only=False)
    assert "optimizer" not in state and state["step"] == 2
    assert all(state["g_s"][name].dtype == torch.float16 for name in ("up.0.weight", "blocks.2.conv1.weight"))

    moved = str(tmp_path / "base_elsewhere.pt")
    shutil.copy(base_weights, moved)
    exports = [str(tmp_path / "from_run.pt"), str(tmp_path / "from_compact.pt")]
    assert main(["--run", first, "--export", exports[0]]) == 0
    assert main(["--run", first, "--checkpoint", compact, "--base", moved, "--export", exports[1]]) == 0
    assert len({load_model(path).fingerprint for path in exports}) == 1, "the compact one exports the same weights"
    second = str(tmp_path / "second")
    assert main(["--run", second, "--init-from", compact, "--base", moved, "--steps", "3"]) == 0
    resumed = torch.load(os.path.join(second, "checkpoint.pt"), weights_only=False)
    assert resumed["step"] == 3 and resumed["config"]["base"] == moved
    records = [json.loads(line) for line in open(os.path.join(second, "log.jsonl"))]
    assert [record["step"] for record in records if "step" in record] == [3], "it went on from step 2"


def test_command_line_sets_the_run_config(corpus, base_weights, tmp_path):
    run = str(tmp_path / "run")
    assert main(["--run", run, "--bottlenecks", "0,4,2", "--base", base_weights, "--corpus", corpus, "--crop", "64",
                 "--pool", "2", "--feature-pool", "1", "--feature-steps", "1", "--steps", "1", "--batch", "2",
                 "--teacher-weight", "0.25", "--tune", "blocks", "--max-minutes", "0"]) == 0
    saved = torch.load(os.path.join(run, "checkpoint.pt"), map_location="cpu", weights_only=False)["config"]
    config = DistillConfig.from_dict(saved)
    assert (config.teacher_weight, config.tune, list(config.bottlenecks)) == (0.25, "blocks", [0, 4, 2])


def test_synthesis_export_refuses_other_transforms(base_weights):
    bundle = read_bundle(base_weights)
    with pytest.raises(ValueError, match="outside g_s"):
        export_synthesis_bundle(UGHyperprior(BOTTLENECK_CONFIG).eval(), bundle)  # random g_a
    student = student_network(load_model(base_weights), (0, 4, 2))
    exported = export_synthesis_bundle(student, bundle)
    assert exported["config"]["bottlenecks"] == [0, 4, 2]
    assert fingerprint_of(exported) != fingerprint_of(bundle)


def test_training_trains_a_bottleneck_model(corpus, tmp_path, clip_teacher):  # noqa: F811 (fixture)
    config = TrainConfig(model=TINY_CONFIG, corpus=corpus, crop=64, batch=2, stage1_steps=1, stage2_steps=1,
                         log_every=1, checkpoint_every=1)
    config.override("model.bottlenecks=[0, 4, 2]")
    assert config.model == BOTTLENECK_CONFIG
    trainer = Trainer(config, str(tmp_path / "run"), teacher=clip_teacher)
    before = trainer.model.g_s.blocks[2].conv.weight.clone()
    trainer.run(progress=False)
    assert trainer.step == 2 and not torch.equal(before, trainer.model.g_s.blocks[2].conv.weight)


def test_bfloat16_autocast_trains_float32_parameters(corpus, base_weights, tmp_path):
    config = DistillConfig(
        bottlenecks=(0, 0, 0), base=base_weights, corpus=corpus, crop=64, pool=2, feature_pool=0,
        quality_weights=(1, 1, 1), steps=2, batch=2, log_every=1, checkpoint_every=2,
    )
    distiller = Distiller(config, str(tmp_path / "run"))
    before = {name: value.clone() for name, value in distiller.student.g_s.state_dict().items()}
    distiller.build_pool()
    distiller.train(bfloat16=True)
    after = distiller.student.g_s.state_dict()
    assert all(value.dtype == before[name].dtype for name, value in after.items())
    assert any(not torch.equal(value, before[name]) for name, value in after.items())
    records = [json.loads(line) for line in open(os.path.join(tmp_path, "run", "log.jsonl"))]
    steps = [record for record in records if record["phase"] == "finetune"]
    assert len(steps) == 2 and all(record["autocast"] == "bfloat16" for record in steps)
    assert all(math.isfinite(record["loss"]) for record in steps)


def test_a_semantic_weight_adds_the_teachers_distance_to_the_machine_loss(corpus, base_weights, tmp_path, clip_teacher):  # noqa: F811
    common = dict(bottlenecks=(0, 0, 0), base=base_weights, corpus=corpus, crop=64, pool=4, feature_pool=0,
                  quality_weights=(1, 1, 1), steps=1, batch=4, teacher_weight=0.0)
    plain = Distiller(DistillConfig(**common), str(tmp_path / "run"))
    plain.build_pool()
    pool = plain._load_pool()
    semantic = Distiller(DistillConfig(**common, semantic_weight=2.5, semantic_teacher="clip:ugc-test-tiny"),
                         str(tmp_path / "run"))
    assert plain.semantic is None and semantic.semantic is not None
    without, with_semantic = plain.image_loss(pool), semantic.image_loss(pool)  # same seed: the same crops
    assert "semantic_total" not in without
    assert float(with_semantic["semantic_total"]) > 0
    assert float(with_semantic["loss"] - without["loss"]) == pytest.approx(
        2.5 * float(with_semantic["semantic_total"]), rel=1e-4)
    assert float(with_semantic["human_db"]) == pytest.approx(float(without["human_db"]), abs=1e-6)
