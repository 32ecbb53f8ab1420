"""Tensors for pipelines: decode_tensor(s), UgcFolder and UgcHandler in a real DataLoader
with two worker processes (tar shards read with tarfile, and with webdataset if installed)."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import ugcodec
from ugcodec.pipelines import UgcFolder, UgcHandler, decode_tensor, decode_tensors

from conftest import make_photo_like
from pixels import assert_pixels_close


@pytest.fixture(scope="module")
def files():
    """Four RGB 40x56 files, one grayscale 40x56, one RGB 24x32 and one wider than a tile."""
    images = [make_photo_like(40, 56, seed=s) for s in range(4)]
    images += [make_photo_like(40, 56, seed=9, channels=1), make_photo_like(24, 32, seed=7),
               make_photo_like(16, 530, seed=8)]
    return [ugcodec.encode(image, quality=2) for image in images]


def chw(image) -> np.ndarray:
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def test_decode_tensor_equals_decode_without_pil(files):
    data = files[0]
    for preference in ("human", "machine", 0.5):
        expected = chw(ugcodec.decode(data, preference))
        as_uint8 = decode_tensor(data, preference, dtype=torch.uint8)
        assert as_uint8.dtype == torch.uint8 and as_uint8.shape == (3, 40, 56)
        np.testing.assert_array_equal(as_uint8.numpy(), expected)
    as_float = ugcodec.decode_tensor(data, "machine", device="cpu")
    assert as_float.dtype == torch.float32 and as_float.device.type == "cpu"
    torch.testing.assert_close(as_float, decode_tensor(data, "machine", dtype=torch.uint8).float() / 255)
    assert decode_tensor(data, dtype=torch.float16).dtype == torch.float16


def test_channel_modes_match_pillow_conversions(files):
    rgb, gray = files[0], files[4]
    np.testing.assert_array_equal(decode_tensor(rgb, mode="L", dtype=torch.uint8).numpy(),
                                  chw(ugcodec.decode(rgb).convert("L")))
    stored_gray = decode_tensor(gray, dtype=torch.uint8)
    assert stored_gray.shape == (1, 40, 56)
    np.testing.assert_array_equal(stored_gray.numpy(), chw(ugcodec.decode(gray)))
    np.testing.assert_array_equal(decode_tensor(gray, mode="RGB", dtype=torch.uint8).numpy(),
                                  chw(ugcodec.decode(gray).convert("RGB")))


def test_bad_arguments_and_files_fail_clearly(files):
    with pytest.raises(ValueError, match="mode"):
        decode_tensor(files[0], mode="CMYK")
    with pytest.raises(ValueError, match="dtype"):
        decode_tensor(files[0], dtype=torch.int32)
    with pytest.raises(ValueError):
        decode_tensor(files[0], preference="robots")
    with pytest.raises(ugcodec.FormatError, match="file 1: .*truncated"):
        decode_tensors([files[0], files[1][:-4]])
    assert UgcHandler()("jpg", b"\xff\xd8") is None


def test_decode_tensors_batches_like_one_by_one(files):
    batched = decode_tensors(files, "machine", dtype=torch.uint8, mode="RGB", batch_size=3)
    assert [tuple(t.shape) for t in batched] == [(3, 40, 56)] * 5 + [(3, 24, 32), (3, 16, 530)]
    for tensor, data in zip(batched, files):
        assert_pixels_close(tensor.numpy(), decode_tensor(data, "machine", dtype=torch.uint8, mode="RGB").numpy())


def test_folder_dataset_in_a_dataloader_with_two_workers(files, tmp_path):
    for index, data in enumerate(files[:5]):
        folder = tmp_path / ("sub" if index % 2 else "")
        folder.mkdir(exist_ok=True)
        (folder / f"{index:03d}.ugc").write_bytes(data)
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = UgcFolder(tmp_path, preference="machine")
    assert len(dataset) == 5 and all(path.endswith(".ugc") for path in dataset.paths)
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert [tuple(batch.shape) for batch in batches] == [(2, 3, 40, 56), (2, 3, 40, 56), (1, 3, 40, 56)]
    got = torch.cat(batches)
    for row, path in enumerate(dataset.paths):
        with open(path, "rb") as handle:
            expected = decode_tensor(handle.read(), "machine", mode="RGB")
        assert_pixels_close((got[row] * 255).round().numpy(), (expected * 255).round().numpy())
    assert len(UgcFolder(tmp_path, recursive=False)) == 3
    with pytest.raises(FileNotFoundError):
        UgcFolder(tmp_path / "missing")


def write_shard(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class TarSamples(Dataset):
    """Samples of tar shards, WebDataset-style (members ``key.ext`` grouped by key), each
    field decoded by a handler: what a pipeline without the webdataset package does."""

    def __init__(self, shards, handler):
        self.samples = []
        for shard in shards:
            with tarfile.open(shard) as tar:
                grouped = {}
                for member in tar.getmembers():
                    key, extension = member.name.split(".", 1)
                    grouped.setdefault(key, {})[extension] = tar.extractfile(member).read()
            self.samples += list(grouped.values())
        self.handler = handler

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        sample = self.samples[index]
        decoded = {key: self.handler(key, value) for key, value in sample.items()}
        return decoded["ugc"], int(sample["cls"])


@pytest.fixture()
def shards(files, tmp_path):
    paths = []
    for shard in range(2):
        path = tmp_path / f"shard-{shard}.tar"
        members = []
        for index in range(2):
            key = f"{shard}{index:03d}"
            members += [(f"{key}.ugc", files[2 * shard + index]), (f"{key}.cls", str(2 * shard + index).encode())]
        write_shard(path, members)
        paths.append(path)
    return paths


def test_handler_decodes_tar_members_in_a_dataloader_with_two_workers(files, shards):
    handler = UgcHandler("human", dtype=torch.uint8)
    loader = DataLoader(TarSamples(shards, handler), batch_size=2, num_workers=2)
    images, labels = zip(*[(image, label) for batch in loader for image, label in zip(*batch)])
    assert sorted(int(label) for label in labels) == [0, 1, 2, 3]
    for image, label in zip(images, labels):
        expected = decode_tensor(files[int(label)], "human", dtype=torch.uint8)
        assert_pixels_close(image.numpy(), expected.numpy())


def test_webdataset_pipeline_with_two_workers(files, shards):
    wds = pytest.importorskip("webdataset", reason="webdataset is an optional extra: pip install 'ugcodec[pipelines]'")
    dataset = (
        wds.WebDataset([str(path) for path in shards], shardshuffle=False, empty_check=False)
        .decode(UgcHandler("machine"))
        .to_tuple("ugc", "cls")
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    seen = {}
    for image, label in loader:
        seen[int(label)] = image
    assert sorted(seen) == [0, 1, 2, 3]
    for label, image in seen.items():
        assert image.shape == (3, 40, 56) and image.dtype == torch.float32
        expected = decode_tensor(files[label], "machine")
        assert_pixels_close((image * 255).round().numpy(), (expected * 255).round().numpy())
