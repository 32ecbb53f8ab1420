"""Training code on tiny inputs: losses, teachers (open_clip with random weights), resume."""
import json
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from tools.losses import MultiScaleSemanticLoss, bits_per_pixel, find_regions, mse_255, paired_augment
from ugcodec.models import ModelConfig
from tools.teachers import OpenClipTeacher, load_teacher
from tools.training import (
    CropSampler, TrainConfig, Trainer, append_record, compact_checkpoint, cosine_rate, crop_detail, half_parameters,
    model_from_checkpoint, widen_checkpoint,
)
from tools.export import export_bundle, export_weights
from ugcodec.weights import fingerprint_of, load_model

from conftest import make_photo_like, write_photos


@pytest.fixture(scope="module")
def clip_teacher():
    """A small randomly initialised open_clip model, registered under a test-only name."""
    from open_clip import factory

    factory._MODEL_CONFIGS["ugc-test-tiny"] = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }
    torch.manual_seed(0)
    return load_teacher("clip:ugc-test-tiny")


def tiny_config(corpus: str, **settings) -> TrainConfig:
    """A run of a tiny model on 64-px crops, two at a time."""
    model = ModelConfig(N=8, M=16, lambdas=(0.01, 0.05), embedding_dim=8)
    return TrainConfig(model=model, corpus=corpus, crop=64, batch=2, **settings)


@pytest.fixture()
def corpus(tmp_path):
    return write_photos(tmp_path / "corpus", 3, 96, 120, stem="image")


def test_teacher_embeds_and_is_frozen(clip_teacher):
    assert isinstance(clip_teacher, OpenClipTeacher) and clip_teacher.input_size == 64
    images = torch.rand(2, 3, 48, 80, requires_grad=True)
    embedding = clip_teacher.embed(images)
    assert embedding.shape == (2, 32)
    embedding.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in clip_teacher.parameters())
    clip_teacher.train()
    assert not clip_teacher.training


def test_unknown_teacher_is_refused():
    with pytest.raises(ValueError):
        load_teacher("resnet-9000")


def test_semantic_loss_is_zero_for_a_perfect_decoding_and_grows_with_damage(clip_teacher):
    torch.manual_seed(0)
    loss = MultiScaleSemanticLoss(clip_teacher)
    x = torch.from_numpy(make_photo_like(64, 64, seed=3)).permute(2, 0, 1)[None].float() / 255
    perfect = loss(x.clone(), x)
    for name in ("global", "local", "instance"):
        assert perfect[name].abs().max() < 1e-4, name
    damaged = loss(torch.rand_like(x), x)
    assert damaged["total"].item() > 0.01


def test_paired_augment_gives_both_images_the_same_varied_view():
    random.seed(4)
    x = torch.rand(2, 3, 96, 80)
    x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    shapes = set()
    for _ in range(20):
        view_hat, view = paired_augment(x_hat, x)
        assert view_hat.shape == view.shape and view.shape[:2] == (2, 3)
        assert 32 <= view.shape[-2] <= 96 and 32 <= view.shape[-1] <= 80
        shapes.add(tuple(view.shape[-2:]))
        # One transform for both: flip, crop and resize are linear, so the view of the
        # difference is the difference of the views.
        random.seed(len(shapes) * 7)
        a, b = paired_augment(x_hat, x)
        random.seed(len(shapes) * 7)
        difference, zeros = paired_augment(x_hat - x, torch.zeros_like(x))
        assert torch.allclose(a - b, difference, atol=1e-5)
        assert zeros.abs().max() == 0
    assert len(shapes) > 5
    view_hat.sum().backward()
    assert x_hat.grad.abs().sum() > 0


def test_semantic_loss_with_augmentation_is_zero_for_a_perfect_decoding(clip_teacher):
    random.seed(0)
    loss = MultiScaleSemanticLoss(clip_teacher, augment=True)
    x = torch.from_numpy(make_photo_like(64, 64, seed=3)).permute(2, 0, 1)[None].float() / 255
    for _ in range(3):
        assert loss(x.clone(), x)["total"].abs().max() < 1e-4
    assert loss(torch.rand_like(x), x)["total"].item() > 0.01


def test_regions_are_found_without_labels():
    image = np.zeros((64, 64, 3))
    image[10:40, 8:30] = 1.0
    regions = find_regions(image)
    assert regions
    # Smoothing may move a boundary by a few pixels; the object must still be found.
    assert any(np.abs(np.subtract(box, (10, 8, 40, 30))).max() <= 4 for _, box in regions)
    assert all(mask.shape == (64, 64) and mask.dtype == bool for mask, _ in regions)


def test_rate_and_distortion_helpers():
    likelihoods = {"y": torch.full((2, 4, 2, 2), 0.5)}
    assert torch.allclose(bits_per_pixel(likelihoods, 16), torch.ones(2))
    assert torch.allclose(mse_255(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)), torch.tensor([255.0**2]))


def test_crop_sampler(corpus):
    sampler = CropSampler(corpus, 64, seed=1)
    batch = sampler.sample(5)
    assert batch.shape == (5, 3, 64, 64) and 0 <= batch.min() and batch.max() <= 1
    with pytest.raises(FileNotFoundError):
        CropSampler(corpus, 512)
    with pytest.raises(ValueError):
        CropSampler(corpus, 64, weighting="bytes")


def test_crop_sampler_weighting(tmp_path):
    folder = tmp_path / "sizes"
    folder.mkdir()
    Image.fromarray(make_photo_like(64, 64, seed=0)).save(folder / "small.png")
    Image.fromarray(make_photo_like(256, 256, seed=1)).save(folder / "large.png")
    by_pixel = CropSampler(str(folder), 64, weighting="pixel")
    by_image = CropSampler(str(folder), 64, weighting="image")
    sizes = sorted(image.shape[0] for image in by_pixel.images)
    assert sizes == [64, 256]
    small = [image.shape[0] for image in by_pixel.images].index(64)
    assert by_pixel.weights[small] == pytest.approx(1 / 17)
    assert by_image.weights[small] == pytest.approx(1 / 2)


def test_both_stages_run_checkpoint_and_resume(corpus, tmp_path, clip_teacher):
    config = tiny_config(corpus, stage1_steps=2, stage2_steps=2, log_every=1, checkpoint_every=2)
    run_dir = str(tmp_path / "run")
    trainer = Trainer(config, run_dir, teacher=clip_teacher)
    g_a_before = trainer.model.g_a[0].weight.detach().clone()
    trainer.run(max_steps=2, progress=False)
    assert trainer.step == 2 and os.path.exists(os.path.join(run_dir, "checkpoint.pt"))
    assert not torch.equal(trainer.model.g_a[0].weight, g_a_before), "stage 1 trains the encoder"

    resumed = Trainer(config, run_dir, teacher=clip_teacher)
    assert resumed.step == 2 and resumed.stage == 2
    g_a_frozen = resumed.model.g_a[0].weight.detach().clone()
    resumed.run(progress=False)
    assert resumed.step == 4
    assert torch.equal(resumed.model.g_a[0].weight, g_a_frozen), "stage 2 must not change the bitstream"
    with open(os.path.join(run_dir, "log.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    assert [r["stage"] for r in records] == [1, 1, 2, 2]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert "semantic_instance" in records[-1]

    compact = str(tmp_path / "checkpoints" / "compact.pt")  # a folder that does not exist yet
    resumed.save_checkpoint(compact, compact=True)
    fresh = Trainer(config, str(tmp_path / "elsewhere"), teacher=clip_teacher)
    fresh.load_checkpoint(compact)
    assert fresh.step == 4
    # Compact checkpoints hold fp16 weights (training goes on in fp32).
    as_stored = resumed.model.g_s.up[0].weight.half().float()
    assert torch.equal(fresh.model.g_s.up[0].weight, as_stored)

    # What tools/gpu_round.sh packs: the run's own checkpoint, less the optimiser's moments.
    packed = str(tmp_path / "packed.pt")
    assert compact_checkpoint(os.path.join(run_dir, "checkpoint.pt"), packed) == 4
    packed_state = torch.load(packed, weights_only=False)
    assert "optimizer" not in packed_state
    assert "optimizer" in torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)
    assert packed_state["model"]["g_s.up.0.weight"].dtype == torch.float16
    assert torch.equal(packed_state["model"]["g_s.up.0.weight"].float(), as_stored)

    # What tools/export_weights.py and tools/model_card.py do with a checkpoint.
    trained = model_from_checkpoint(torch.load(compact, map_location="cpu", weights_only=False))
    assert not trained.training
    assert torch.equal(trained.g_s.up[0].weight, as_stored)
    written = export_weights(trained, str(tmp_path / "weights.pt"))
    assert fingerprint_of(export_bundle(trained)) == written == load_model(str(tmp_path / "weights.pt")).fingerprint


def test_config_file_parses():
    config = TrainConfig.from_toml(os.path.join(os.path.dirname(__file__), "..", "tools", "configs", "cpu_small.toml"))
    assert config.model.num_qualities >= 4 and config.total_steps > config.stage1_steps


def test_stage2_semantic_weight_defaults_to_stage1s_and_weighs_the_loss(corpus, tmp_path, clip_teacher):
    def stage2_loss(weight):
        config = tiny_config(corpus, stage1_steps=0, stage2_steps=1, lambda_semantic=7.0, stage2_lambda_semantic=weight)
        trainer = Trainer(config, str(tmp_path / f"run{weight}"), teacher=clip_teacher)
        torch.manual_seed(0)
        trainer.sampler.rng = np.random.default_rng(0)
        return trainer, trainer.stage2_loss(trainer.sampler.sample(2))

    default, logs_default = stage2_loss(None)
    assert default.stage == 2 and default.stage2_lambda_semantic == 7.0
    _, logs_zero = stage2_loss(0.0)
    _, logs_large = stage2_loss(1000.0)
    assert logs_zero["semantic_total"] > 0
    assert logs_zero["loss"] < logs_default["loss"] < logs_large["loss"]


def test_crop_detail_measures_busyness():
    flat = np.full((32, 32, 3), 128, dtype=np.uint8)
    stripes = np.zeros((32, 32, 3), dtype=np.uint8)
    stripes[:, ::2] = 200
    assert crop_detail(flat) == 0.0
    assert crop_detail(stripes) == pytest.approx(200.0)


def test_crop_sampler_detail_prefers_busy_crops(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(folder / "flat.png")
    Image.fromarray(make_photo_like(64, 64, seed=2)).save(folder / "busy.png")
    busy_detail = crop_detail(make_photo_like(64, 64, seed=2))

    def flat_share(detail):
        batch = CropSampler(str(folder), 64, seed=0, weighting="image", detail=detail).sample(200)
        return float((batch.flatten(1).std(dim=1) < 1e-6).float().mean())

    assert 0.35 < flat_share(0.0) < 0.65
    # A flat crop is never kept unless all MAX_DRAWS draws were flat (probability 2^-20).
    assert flat_share(busy_detail) == 0.0


def test_regions_at_reduced_size_match_full_size_and_keep_the_image_shape():
    image = np.zeros((130, 126, 3))  # not a multiple of the shrink factor: edges are padded back
    image[20:80, 16:60] = 1.0
    regions = find_regions(image, max_side=64)
    assert all(mask.shape == (130, 126) and mask.dtype == bool for mask, _ in regions)
    assert any(np.abs(np.subtract(box, (20, 16, 80, 60))).max() <= 6 for _, box in regions)
    assert [box for _, box in find_regions(image, max_side=None)] == [box for _, box in find_regions(image, max_side=1000)]


def test_instance_regions_from_worker_processes_equal_in_process_ones(clip_teacher):
    images = np.stack([make_photo_like(64, 64, seed=seed) for seed in range(3)]).astype(np.float32) / 255
    in_process = MultiScaleSemanticLoss(clip_teacher, region_max_side=32)
    workers = MultiScaleSemanticLoss(clip_teacher, region_max_side=32, region_workers=2)
    try:
        expected, got = in_process._regions_of_batch(images), workers._regions_of_batch(images)
        processes = list(workers._pool._processes.values())
    finally:
        workers.close()
    assert processes and not any(process.is_alive() for process in processes)
    workers.close()  # idempotent
    assert len(got) == len(expected) == 3 and any(expected)
    for mine, theirs in zip(got, expected):
        assert [box for _, box in mine] == [box for _, box in theirs]
        assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(mine, theirs))


def test_mobilenet_teacher_logits_are_the_classifier_of_the_features(tmp_path):
    from torchvision.models import mobilenet_v2

    from tools.teachers import MobileNetV2Teacher

    torch.manual_seed(0)
    network = mobilenet_v2(width_mult=0.25)
    network.classifier[-1] = torch.nn.Linear(network.last_channel, 10)
    path = str(tmp_path / "mobilenet.pth")
    torch.save(network.state_dict(), path)
    with pytest.MonkeyPatch.context() as patch:  # the same small network behind both teachers
        patch.setattr("torchvision.models.mobilenet_v2", lambda: mobilenet_v2(width_mult=0.25, num_classes=10))
        features = MobileNetV2Teacher(path)
        logits = load_teacher("mobilenet_v2:logits", path)
    images = torch.rand(2, 3, 64, 64)
    assert features.embed(images).shape == (2, network.last_channel)
    assert torch.allclose(logits.embed(images), network.classifier[-1](features.embed(images)), atol=1e-5)
    assert "logits" in logits.description and "logits" not in features.description
    # Benchmark reports name the teacher classifier by its weights file, whatever the output.
    assert features.weights_file == logits.weights_file == "mobilenet.pth"
    with pytest.raises(ValueError):
        MobileNetV2Teacher(path, output="probabilities")
    with pytest.raises(ValueError):
        load_teacher("mobilenet_v2:probabilities", path)


def test_mobilenet_teacher_maps_distance_is_one_minus_the_mean_feature_cosine(tmp_path):
    from torchvision.models import mobilenet_v2

    from tools.losses import embedding_distance
    from tools.teachers import MobileNetV2Teacher

    torch.manual_seed(0)
    path = str(tmp_path / "mobilenet.pth")
    torch.save(mobilenet_v2(width_mult=0.25).state_dict(), path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("torchvision.models.mobilenet_v2", lambda: mobilenet_v2(width_mult=0.25))
        teacher = load_teacher("mobilenet_v2:maps", path)
    assert isinstance(teacher, MobileNetV2Teacher) and "maps" in teacher.description
    x, x_hat = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    expected, a, b = [], teacher.mean, teacher.std
    maps_x, maps_hat = (x - a) / b, (x_hat - a) / b
    for index, block in enumerate(teacher.features[: max(teacher.MAP_BLOCKS) + 1]):
        maps_x, maps_hat = block(maps_x), block(maps_hat)
        if index in teacher.MAP_BLOCKS:
            expected.append(torch.nn.functional.cosine_similarity(maps_x, maps_hat, dim=1).flatten(1).mean(dim=1))
    want = 1 - torch.stack(expected).mean(dim=0)
    assert torch.allclose(embedding_distance(teacher, x_hat, x), want, atol=1e-4)
    assert embedding_distance(teacher, x, x).abs().max() < 1e-5


def test_kl_distance_compares_the_teachers_class_probabilities(tmp_path, clip_teacher):
    from torchvision.models import mobilenet_v2

    from tools.losses import embedding_distance

    torch.manual_seed(0)
    path = str(tmp_path / "mobilenet.pth")
    torch.save(mobilenet_v2(width_mult=0.25, num_classes=10).state_dict(), path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("torchvision.models.mobilenet_v2", lambda: mobilenet_v2(width_mult=0.25, num_classes=10))
        teacher = load_teacher("mobilenet_v2:logits", path)
        features = load_teacher("mobilenet_v2", path)
    assert teacher.class_scores and not features.class_scores and not clip_teacher.class_scores
    x, x_hat = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    p, q = teacher.embed(x).softmax(1), teacher.embed(x_hat).softmax(1)
    want = (p * (p.log() - q.log())).sum(1)
    got = embedding_distance(teacher, x_hat, x, "kl")
    assert torch.allclose(got, want, atol=1e-6) and got.min() > -1e-7 and got.max() > 0
    assert embedding_distance(teacher, x, x, "kl").abs().max() < 1e-6
    loss = MultiScaleSemanticLoss(teacher, distance="kl")
    assert torch.allclose(loss.global_term(x_hat, x), want, atol=1e-5)
    for refused in ((features, "kl"), (clip_teacher, "kl"), (teacher, "euclid")):
        with pytest.raises(ValueError):
            MultiScaleSemanticLoss(*refused[:1], distance=refused[1])
    with pytest.raises(ValueError):
        embedding_distance(teacher, x_hat, x, "euclid")


def test_config_overrides_check_names_and_types():
    config = TrainConfig.from_toml(os.path.join(os.path.dirname(__file__), "..", "tools", "configs", "cpu_small.toml"))
    config.override("lr=3e-5")
    config.override("batch = 4")
    config.override("stage2_lambda_semantic=1000")  # None before: any number
    config.override("teacher=mobilenet_v2:logits")  # a bare word is a string
    config.override("model.M=192")
    assert (config.lr, config.batch, config.stage2_lambda_semantic) == (3e-5, 4, 1000)
    assert config.teacher == "mobilenet_v2:logits" and config.model.M == 192 and config.model.N == 64
    for bad in ("lr", "learning_rate=1", "batch=2.5", "lr=fast", "model.lambdas=1", "model.depth=3"):
        with pytest.raises(ValueError):
            config.override(bad)


def test_both_stages_train_under_bfloat16_autocast_with_float32_parameters(corpus, tmp_path, clip_teacher):
    config = tiny_config(corpus, stage1_steps=1, stage2_steps=1, log_every=1, checkpoint_every=2)
    trainer = Trainer(config, str(tmp_path / "run"), teacher=clip_teacher)
    g_s_before = trainer.model.g_s.up[0].weight.detach().clone()
    trainer.run(progress=False, bfloat16=True)
    assert trainer.step == 2
    assert all(parameter.dtype == torch.float32 for parameter in trainer.model.parameters())
    assert not torch.equal(trainer.model.g_s.up[0].weight, g_s_before)
    with open(os.path.join(tmp_path, "run", "log.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    assert [(r["stage"], r["autocast"]) for r in records] == [(1, "bfloat16"), (2, "bfloat16")]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["bpp"]) for r in records)


def test_a_time_boxed_run_stops_with_a_checkpoint_and_logs_true_averages_after_resuming(corpus, tmp_path, clip_teacher):
    config = tiny_config(corpus, stage1_steps=100, stage2_steps=0, log_every=4, checkpoint_every=100)
    run_dir = str(tmp_path / "run")
    trainer = Trainer(config, run_dir, teacher=clip_teacher)
    trainer.run(max_seconds=0.0, progress=False)
    assert trainer.step == 1 and os.path.exists(os.path.join(run_dir, "checkpoint.pt"))
    resumed = Trainer(config, run_dir, teacher=clip_teacher)
    real_loss = resumed.stage1_loss
    resumed.stage1_loss = lambda x: {**real_loss(x), "constant": torch.tensor(2.0)}
    resumed.run(max_steps=3, progress=False)  # steps 2..4: the record at 4 covers three steps
    with open(os.path.join(run_dir, "log.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    assert [r["step"] for r in records] == [1, 4]
    assert records[1]["constant"] == 2.0  # an average over the steps taken, not over log_every


def test_a_run_releases_the_segmentation_workers_even_when_a_step_fails(corpus, tmp_path, clip_teacher):
    trainer = Trainer(tiny_config(corpus, stage1_steps=10, stage2_steps=0), str(tmp_path / "run"), teacher=clip_teacher)
    closed = []
    trainer.semantic.close = lambda: closed.append(True)

    def failing_loss(x):
        raise RuntimeError("out of memory")

    trainer.stage1_loss = failing_loss
    with pytest.raises(RuntimeError):
        trainer.run(progress=False)
    assert closed == [True]


def test_a_widened_checkpoint_resumes_at_its_step_and_decodes_as_before(corpus, tmp_path, clip_teacher):
    config = tiny_config(corpus, stage1_steps=6, stage2_steps=0, log_every=1)
    trainer = Trainer(config, str(tmp_path / "narrow"), teacher=clip_teacher)
    trainer.run(max_steps=2, progress=False)
    trainer.save_checkpoint(str(tmp_path / "narrow.pt"), compact=True)
    trainer.load_checkpoint(str(tmp_path / "narrow.pt"))  # the fp16 weights the compact file holds

    with pytest.raises(ValueError, match="fewer"):
        widen_checkpoint(str(tmp_path / "narrow.pt"), str(tmp_path / "narrower.pt"), 4)
    assert widen_checkpoint(str(tmp_path / "narrow.pt"), str(tmp_path / "wide.pt"), 12) == 2
    wide_config = tiny_config(corpus, stage1_steps=6, stage2_steps=0, log_every=1)
    wide_config.override("model.N=12")
    widened = Trainer(wide_config, str(tmp_path / "wide"), teacher=clip_teacher)
    widened.load_checkpoint(str(tmp_path / "wide.pt"))
    assert widened.step == 2 and widened.model.config.N == 12
    x = torch.rand(1, 3, 64, 64)
    quality, beta = torch.tensor([1]), torch.tensor([1.0])
    trainer.model.eval()
    widened.model.eval()
    with torch.no_grad():
        assert torch.equal(widened.model(x, quality, beta)["x_hat"], trainer.model(x, quality, beta)["x_hat"])
    widened.run(max_steps=1, progress=False)
    assert widened.step == 3


def test_crops_drawn_in_worker_processes_train(corpus, tmp_path, clip_teacher):
    config = tiny_config(corpus, stage1_steps=2, stage2_steps=0, log_every=1)
    config.sampler_workers = 2
    trainer = Trainer(config, str(tmp_path / "run"), teacher=clip_teacher)
    batch = trainer.sampler.sample(config.batch)
    assert batch.shape == (config.batch, 3, config.crop, config.crop) and 0 <= batch.min() and batch.max() <= 1
    assert not torch.equal(batch, trainer.sampler.sample(config.batch))
    trainer.run(progress=False)
    assert trainer.step == 2 and os.path.exists(os.path.join(str(tmp_path / "run"), "checkpoint.pt"))


def test_quality_weights_choose_which_levels_stage1_draws(corpus, tmp_path, clip_teacher):
    config = tiny_config(corpus, stage1_steps=1, quality_weights=[0.0, 1.0])
    trainer = Trainer(config, str(tmp_path / "run"), teacher=clip_teacher)
    assert trainer.draw_qualities(64).tolist() == [1] * 64
    uniform = Trainer(tiny_config(corpus, stage1_steps=1), str(tmp_path / "uniform"), teacher=clip_teacher)
    assert set(uniform.draw_qualities(64).tolist()) == {0, 1}
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0]):
        with pytest.raises(ValueError, match="quality_weights"):
            Trainer(tiny_config(corpus, quality_weights=bad), str(tmp_path / "bad"), teacher=clip_teacher)


def test_non_finite_steps_leave_the_weights_alone_and_stop_training(corpus, tmp_path, clip_teacher, monkeypatch):
    import tools.training as training

    trainer = Trainer(tiny_config(corpus, stage1_steps=50, stage2_steps=0), str(tmp_path / "run"), teacher=clip_teacher)
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    finite_loss = trainer.stage1_loss
    monkeypatch.setattr(trainer, "stage1_loss", lambda x: {**finite_loss(x), "loss": finite_loss(x)["loss"] * float("nan")})
    trainer.run(max_steps=3, progress=False)
    assert all(torch.equal(before[name], value) for name, value in trainer.model.state_dict().items())
    with open(tmp_path / "run" / "log.jsonl") as handle:
        assert json.loads(handle.readlines()[-1])["skipped"] == 3
    monkeypatch.setattr(training, "MAX_NONFINITE_STEPS", 4)
    with pytest.raises(FloatingPointError, match="not finite for 4 steps"):
        trainer.run(max_steps=10, progress=False)


def test_run_helpers_rate_log_and_half_parameters(tmp_path, capsys):
    assert cosine_rate(1e-4, 0, 100) == pytest.approx(1e-4)
    assert cosine_rate(1e-4, 50, 100) == pytest.approx(0.55e-4)
    assert cosine_rate(1e-4, 100, 100) == cosine_rate(1e-4, 500, 100) == pytest.approx(1e-5)
    append_record(str(tmp_path), {"step": 1})
    append_record(str(tmp_path), {"step": 2}, echo=False)
    assert (tmp_path / "log.jsonl").read_text().splitlines() == ['{"step": 1}', '{"step": 2}']
    assert capsys.readouterr().out == '{"step": 1}\n'
    module = torch.nn.BatchNorm2d(3)
    halved = half_parameters(module.state_dict(), module)
    assert halved["weight"].dtype == torch.float16 and halved["running_mean"].dtype == torch.float32
