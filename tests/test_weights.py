"""The weights fingerprint as bitstream_spec.md §3.3 defines it."""
import hashlib

import numpy as np
import pytest
import torch

import ugcodec
from ugcodec.weights import fingerprint_of, load_model


def test_fingerprint_follows_the_spec_byte_for_byte():
    bundle = {"b": {"w": torch.tensor([1, -2], dtype=torch.int16)}, "a": [0.5, 2], "c": torch.ones(2, 1, dtype=torch.float16)}
    expected = hashlib.sha256()
    # Keys in sorted order; dtype spelled as the spec writes it, shape as a Python tuple.
    expected.update(b"/a" + b"[0.5, 2]")
    expected.update(b"/b/w" + b"torch.int16(2,)" + np.array([1, -2], dtype="<i2").tobytes())
    expected.update(b"/c" + b"torch.float16(2, 1)" + np.ones((2, 1), dtype="<f2").tobytes())
    assert fingerprint_of(bundle) == expected.digest()[:8]


def test_fingerprint_changes_with_any_weight():
    bundle = {"w": torch.zeros(4, dtype=torch.float32)}
    changed = {"w": torch.tensor([0.0, 0.0, 1e-7, 0.0], dtype=torch.float32)}
    assert fingerprint_of(bundle) != fingerprint_of(changed)


def test_fingerprint_refuses_a_dtype_the_spec_does_not_name():
    with pytest.raises(ValueError, match="float64"):
        fingerprint_of({"w": torch.zeros(2, dtype=torch.float64)})


def test_a_model_loaded_inside_inference_mode_can_still_be_refined_with(tiny_model):
    """ugcodec.encode(..., refine=N) as a process's first call loads the model inside the
    coder's inference mode; its tensors must still be usable by autograd."""
    from ugcodec.weights import model_from_bundle, read_bundle

    with torch.inference_mode():
        model = model_from_bundle(read_bundle(tiny_model.path), tiny_model.path)
    assert not any(tensor.is_inference() for tensor in [*model.network.parameters(), *model.network.buffers()])
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    image[16:48, 16:48] = 30
    assert ugcodec.decode(ugcodec.encode(image, 2, model=model, refine=1), model=model).size == (64, 64)


def test_the_shipped_summary_describes_the_shipped_weights():
    """ugc info checks files against this summary instead of loading torch and the weights."""
    from ugcodec.container import shipped_weights_summary

    model = load_model()
    summary = shipped_weights_summary()
    assert (summary.model_id, summary.fingerprint, summary.num_qualities) == (
        model.model_id, model.fingerprint, model.num_qualities)


def test_new_shipped_weights_remember_which_release_shipped_the_old(tmp_path, monkeypatch):
    """A file made with earlier shipped weights names the release that decodes it."""
    import json
    from dataclasses import replace

    import tools.export as export
    import ugcodec.container as container
    from ugcodec.errors import ModelMismatchError

    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps({"model_id": 2, "fingerprint": "11" * 8, "num_qualities": 6}))
    monkeypatch.setattr(export, "SHIPPED_SUMMARY", str(summary_path))
    monkeypatch.setattr(container, "SHIPPED_SUMMARY", str(summary_path))
    bundle = {"model_id": 1, "config": {"lambdas": [0.1] * 8}}
    export.write_shipped_summary(bundle, bytes.fromhex("22" * 8))
    written = json.loads(summary_path.read_text())
    assert written["earlier_releases"] == {"11" * 8: ugcodec.__version__}
    assert (written["fingerprint"], written["num_qualities"]) == ("22" * 8, 8)
    export.write_shipped_summary(bundle, bytes.fromhex("22" * 8))
    assert json.loads(summary_path.read_text())["earlier_releases"] == {"11" * 8: ugcodec.__version__}

    header = container.Header(model_id=1, color_mode=0, quality=1, width=8, height=8,
                              fingerprint=bytes.fromhex("11" * 8), z_length=1, y_length=1)
    weights = container.WeightsSummary(1, bytes.fromhex("22" * 8), 8)
    with pytest.raises(ModelMismatchError, match=f"ugcodec=={ugcodec.__version__}"):
        container.check_weights(header, weights)
    with pytest.raises(ModelMismatchError, match="the weights that made it"):
        container.check_weights(replace(header, fingerprint=bytes(8)), weights)


def test_shipped_summary_keeps_also_decodes_and_the_check_honours_it(tmp_path, monkeypatch):
    import json
    from dataclasses import replace

    import tools.export as export
    import ugcodec.container as container
    from ugcodec.errors import ModelMismatchError, UgcError

    summary_path = tmp_path / "summary.json"
    monkeypatch.setattr(export, "SHIPPED_SUMMARY", str(summary_path))
    monkeypatch.setattr(container, "SHIPPED_SUMMARY", str(summary_path))
    bundle = {"model_id": 1, "config": {"lambdas": [0.1] * 8}, "also_decodes": ["11" * 8]}
    export.write_shipped_summary(bundle, bytes.fromhex("22" * 8))
    summary = container.shipped_weights_summary()
    assert summary.also_decodes == {bytes.fromhex("11" * 8)}

    header = container.Header(model_id=1, color_mode=0, quality=1, width=8, height=8,
                              fingerprint=bytes.fromhex("11" * 8), z_length=1, y_length=1)
    container.check_weights(header, summary)  # a file of the weights it also decodes
    with pytest.raises(ModelMismatchError, match="the weights that made it"):
        container.check_weights(replace(header, fingerprint=bytes.fromhex("33" * 8)), summary)
    summary_path.write_text(json.dumps({"model_id": 1, "fingerprint": "22" * 8, "num_qualities": 8, "also_decodes": "11"}))
    with pytest.raises(UgcError, match="also_decodes"):
        container.shipped_weights_summary()
