"""Training losses: rate, distortion and the paper's multi-scale semantic supervision.

The semantic terms compare a frozen teacher's embeddings (`tools.teachers`) of an
image x and of its machine decoding x_hat, as 1 - cosine similarity:

* global: the whole image;
* local: the same random crop of x and x_hat;
* instance: object-like regions found without labels (Felzenszwalb's graph segmentation
  of x), background zeroed, cropped to the region's box and resized.
"""
from __future__ import annotations

import concurrent.futures
import functools
import math
import multiprocessing
import random
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .teachers import Teacher

__all__ = [
    "bits_per_pixel",
    "mse_255",
    "embedding_distance",
    "MultiScaleSemanticLoss",
    "find_regions",
    "paired_augment",
]


def bits_per_pixel(likelihoods: Dict[str, Tensor], num_pixels: int) -> Tensor:
    """Per-sample rate in bits per pixel, ``(B,)``, from the model's likelihoods (summed in
    float32 even where autocast computed them in bfloat16)."""
    total = sum(torch.log(lik.float()).flatten(1).sum(dim=1) for lik in likelihoods.values())
    return total / (-math.log(2) * num_pixels)


def mse_255(x_hat: Tensor, x: Tensor) -> Tensor:
    """Per-sample 255^2 * MSE, ``(B,)`` (the paper's distortion scale), in float32."""
    return (255.0**2) * (x_hat.float() - x.float()).pow(2).flatten(1).mean(dim=1)


#: Distances between the teacher's outputs for x and x_hat (see embedding_distance).
DISTANCES = ("cosine", "kl")


def check_distance(teacher: Teacher, distance: str) -> None:
    """Raises ValueError unless ``distance`` is one of DISTANCES that applies to the teacher."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}: use one of {', '.join(DISTANCES)}")
    if distance == "kl" and not teacher.class_scores:
        raise ValueError(
            "the kl distance needs a teacher that outputs class scores (such as mobilenet_v2:logits), "
            f"not {teacher.description or type(teacher).__name__}"
        )


def embedding_distance(teacher: Teacher, x_hat: Tensor, x: Tensor, distance: str = "cosine") -> Tensor:
    """Per-sample distance between the teacher's outputs for x_hat and x, ``(B,)`` float32; no
    gradient through x.

    Args:
        distance: ``"cosine"``, 1 - cos(teacher(x_hat), teacher(x)) (the paper's); or
            ``"kl"``, KL(softmax(teacher(x)) || softmax(teacher(x_hat))) in nats, for a
            teacher whose outputs are class scores: it weighs the classes the teacher
            finds likely in x, which is what keeping its top-1 decision needs, where the
            cosine weighs every component alike.

    Raises:
        ValueError: an unknown distance, or ``"kl"`` with a teacher whose outputs are
            not class scores (``teacher.class_scores`` false).
    """
    check_distance(teacher, distance)
    with torch.no_grad():
        target = teacher.embed(x)
    if distance == "kl":
        log_target = F.log_softmax(target.float(), dim=1)
        log_decoded = F.log_softmax(teacher.embed(x_hat).float(), dim=1)
        return (log_target.exp() * (log_target - log_decoded)).sum(dim=1)
    # float32 whatever precision the teacher ran in (bfloat16 autocast), like every loss term
    return 1.0 - F.cosine_similarity(teacher.embed(x_hat).float(), target.float(), dim=1)


def paired_augment(x_hat: Tensor, x: Tensor, min_scale: float = 0.5, max_shift: int = 8) -> Tuple[Tensor, Tensor]:
    """The same random view of x_hat and x, for a teacher distance that transfers.

    Both images are mirrored (half the time), shifted by dropping up to ``max_shift``
    rows and columns at the top-left, and downscaled (antialiased) by a factor drawn
    from ``[min_scale, 1]``. A change of x_hat that only moves one network's features
    at one scale and one alignment to its strides (as an adversarial perturbation does)
    is averaged away over such views; input diversity is what makes such changes carry
    over to other networks (Xie et al., CVPR 2019), and the machine decoding must serve
    networks it was never trained with.

    Args:
        x_hat, x: ``(B, 3, H, W)`` images of the same shape; gradients flow through x_hat.
        min_scale: smallest downscaling factor, in (0, 1].
        max_shift: most rows (and columns) dropped at the top-left; kept below a quarter
            of the side.

    Returns:
        ``(x_hat_view, x_view)``, of equal shape.
    """
    height, width = x.shape[-2:]
    if random.random() < 0.5:
        x_hat, x = x_hat.flip(-1), x.flip(-1)
    shift = min(max_shift, height // 4, width // 4)
    top, left = random.randint(0, shift), random.randint(0, shift)
    x_hat, x = x_hat[..., top:, left:], x[..., top:, left:]
    scale = random.uniform(min_scale, 1.0)
    if scale < 1.0:
        size = (max(32, round((height - top) * scale)), max(32, round((width - left) * scale)))
        x_hat, x = (F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True) for image in (x_hat, x))
    return x_hat, x


def find_regions(
    image: np.ndarray, max_regions: int = 4, min_fraction: float = 0.03, max_side: Optional[int] = None
) -> List[Tuple[np.ndarray, Tuple[int, int, int, int]]]:
    """Object-like regions of one image, found without labels.

    Args:
        image: ``(H, W, 3)`` float array in [0, 1].
        max_regions: at most this many regions, largest first.
        min_fraction: smallest region kept, as a fraction of the image area.
        max_side: None segments at full size; else the image is first shrunk by an
            integer factor (box average) until its longer side is at most this, and the
            labels are scaled back up. Segmentation costs about the pixel count
            (17 ms at 128x128 on one core), which would otherwise bound a GPU run.

    Returns:
        list of ``(mask, (top, left, bottom, right))`` with a boolean ``(H, W)`` mask.
    """
    from skimage.segmentation import felzenszwalb

    height, width = image.shape[:2]
    factor = 1 if max_side is None else max(1, math.ceil(max(height, width) / max_side))
    small = image
    if factor > 1:
        cropped_h, cropped_w = height // factor * factor, width // factor * factor
        small = image[:cropped_h, :cropped_w].reshape(cropped_h // factor, factor, cropped_w // factor, factor, -1)
        small = small.mean(axis=(1, 3))
    small_h, small_w = small.shape[:2]
    labels = felzenszwalb(small, scale=max(small_h, small_w), sigma=0.8, min_size=max(16, small_h * small_w // 100))
    if factor > 1:
        # Back to full size; the rows and columns the shrink dropped repeat the last label.
        labels = np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)
        labels = np.pad(labels, ((0, height - labels.shape[0]), (0, width - labels.shape[1])), mode="edge")
    counts = np.bincount(labels.ravel())
    order = np.argsort(counts)[::-1]
    regions = []
    for label in order[:max_regions]:
        if counts[label] < min_fraction * height * width:
            break
        mask = labels == label
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        regions.append((mask, (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)))
    return regions


class MultiScaleSemanticLoss(torch.nn.Module):
    """Global + local + instance semantic distance between x_hat and x.

    Args:
        teacher: frozen image encoder.
        weights: relative weight of ``global``, ``local`` and ``instance`` terms.
        local_fraction: side of the local crop as a fraction of the image side.
        region_size: side that instance crops are resized to (before the teacher's own
            resize, if it has one).
        max_regions: regions per image for the instance term.
        region_max_side: segment images shrunk to at most this side (``find_regions``'s
            ``max_side``); None segments at full size.
        region_workers: 0 segments in this process; N > 0 segments a batch's images in
            N worker processes, so a GPU run is not held up by the CPU.
        augment: compare a random view of both images (:func:`paired_augment`, one per
            batch) instead of the images themselves.
        distance: ``"cosine"`` or ``"kl"`` (see :func:`embedding_distance`).

    Raises:
        ValueError: an unknown distance, or ``"kl"`` with a teacher that does not output
            class scores.
    """

    def __init__(
        self,
        teacher: Teacher,
        weights: Optional[Dict[str, float]] = None,
        local_fraction: float = 0.5,
        region_size: int = 96,
        max_regions: int = 4,
        region_max_side: Optional[int] = None,
        region_workers: int = 0,
        augment: bool = False,
        distance: str = "cosine",
    ) -> None:
        super().__init__()
        check_distance(teacher, distance)
        self.teacher = teacher
        self.weights = {"global": 1.0, "local": 1.0, "instance": 1.0, **(weights or {})}
        self.local_fraction = local_fraction
        self.region_size = region_size
        self.max_regions = max_regions
        self.region_max_side = region_max_side
        self.region_workers = region_workers
        self.augment = augment
        self.distance = distance
        self._pool: Optional[concurrent.futures.Executor] = None

    def _regions_of_batch(self, images: np.ndarray) -> list:
        find = functools.partial(find_regions, max_regions=self.max_regions, max_side=self.region_max_side)
        if self.region_workers <= 0 or len(images) < 2:
            return [find(image) for image in images]
        if self._pool is None:
            # spawn, not fork: the trainer may already hold a CUDA context.
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.region_workers, mp_context=multiprocessing.get_context("spawn")
            )
        return list(self._pool.map(find, images))

    def close(self) -> None:
        """Shuts down the segmentation worker processes, if any were started. Idempotent;
        a later batch starts them again."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def global_term(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return embedding_distance(self.teacher, x_hat, x, self.distance)

    def local_term(self, x_hat: Tensor, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        crop_h = max(32, int(height * self.local_fraction))
        crop_w = max(32, int(width * self.local_fraction))
        top = random.randint(0, height - crop_h)
        left = random.randint(0, width - crop_w)
        window = (..., slice(top, top + crop_h), slice(left, left + crop_w))
        return embedding_distance(self.teacher, x_hat[window], x[window], self.distance)

    def instance_term(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Mean region distance per sample; samples with no region score 0."""
        crops_hat, crops, owners = [], [], []
        images = x.detach().permute(0, 2, 3, 1).cpu().numpy()
        for index, regions in enumerate(self._regions_of_batch(images)):
            for mask, (top, left, bottom, right) in regions:
                keep = torch.from_numpy(mask[top:bottom, left:right]).to(x.device, x.dtype)
                for source, sink in ((x_hat, crops_hat), (x, crops)):
                    region = source[index, :, top:bottom, left:right] * keep
                    sink.append(
                        F.interpolate(region[None], size=(self.region_size,) * 2, mode="bilinear", align_corners=False)
                    )
                owners.append(index)
        result = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        if not owners:
            return result
        distances = embedding_distance(self.teacher, torch.cat(crops_hat), torch.cat(crops), self.distance)
        owner_index = torch.tensor(owners, device=x.device)
        result = result.index_add(0, owner_index, distances)
        counts = torch.bincount(owner_index, minlength=x.shape[0]).clamp(min=1).to(x.dtype)
        return result / counts

    def forward(self, x_hat: Tensor, x: Tensor) -> Dict[str, Tensor]:
        """Returns per-sample terms ``global``, ``local``, ``instance`` and their weighted ``total``."""
        if self.augment:
            x_hat, x = paired_augment(x_hat, x)
        terms = {}
        if self.weights["global"]:
            terms["global"] = self.global_term(x_hat, x)
        if self.weights["local"]:
            terms["local"] = self.local_term(x_hat, x)
        if self.weights["instance"]:
            terms["instance"] = self.instance_term(x_hat, x)
        terms["total"] = sum(self.weights[name] * value for name, value in terms.items())
        return terms
