"""The learned transforms: a variable-rate mean-scale hyperprior with a
preference-conditional synthesis transform (UG-ICM).

This module is the float model used for training and for the pixel transforms at
coding time (g_a, h_a, g_s). The parsing path does not use its float h_s: coding uses
the integer-exact copy in :mod:`ugcodec.integer_net`, exported from it.

Rates: one model serves every quality level through per-level gain vectors
(Cui et al. 2021, "Asymmetric gained deep image compression"). Level q scales the
latent by ``gain[q]`` before quantisation and by ``inverse_gain[q]`` after it; the
hyper-synthesis predicts mean and scale of the unscaled latent, which are multiplied by
the same gain.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Sequence

import torch
from torch import Tensor, nn

from . import _compressai
from ._compressai import conv, conv3x3, deconv, subpel_conv3x3
from .layers import (
    GDN,
    BottleneckResidualBlock,
    FourierPreferenceEmbedding,
    MachineAdapter,
    ShiftedResidualBlock,
    straight_through_round,
)
from .scales import scale_table

__all__ = ["ModelConfig", "UGHyperprior"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; stored with the weights.

    Attributes:
        N: channels of the transforms and of the hyper-latent z.
        M: channels of the latent y.
        lambdas: rate-distortion trade-off of each quality level, lowest rate first.
        embedding_dim: width of the preference embedding.
        machine_adapter: g_s has a beta-gated :class:`~ugcodec.layers.MachineAdapter`
            after each residual block (extra capacity for the machine decoding only).
        adapter_width: with ``machine_adapter``, 0 for full adapters (two 3x3
            convolutions over N channels), h > 0 for bottleneck adapters of h inner
            channels (cheap to decode).
        bottlenecks: the residual block of each of g_s's three levels (lowest
            resolution first): 0 for a :class:`~ugcodec.layers.ShiftedResidualBlock`,
            h > 0 for a :class:`~ugcodec.layers.BottleneckResidualBlock` of h inner
            channels (cheaper to decode).
    """

    N: int = 64
    M: int = 128
    lambdas: Sequence[float] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)
    embedding_dim: int = 64
    machine_adapter: bool = False
    adapter_width: int = 0
    bottlenecks: Sequence[int] = (0, 0, 0)

    def __post_init__(self) -> None:
        bottlenecks = tuple(self.bottlenecks)
        if len(bottlenecks) != 3 or any(not isinstance(width, int) or width < 0 for width in bottlenecks):
            raise ValueError(f"bottlenecks needs one non-negative int per level of g_s (3), not {self.bottlenecks!r}")
        object.__setattr__(self, "bottlenecks", bottlenecks)
        if not isinstance(self.adapter_width, int) or self.adapter_width < 0:
            raise ValueError(f"adapter_width must be a non-negative int, not {self.adapter_width!r}")
        if self.adapter_width and not self.machine_adapter:
            raise ValueError("adapter_width needs machine_adapter = true")

    @property
    def num_qualities(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lambdas"] = list(self.lambdas)
        if not self.machine_adapter:
            # Weights without adapters keep the config (and so the fingerprint) they had
            # before the option existed.
            del data["machine_adapter"]
        if not self.adapter_width:
            del data["adapter_width"]  # full adapters keep the config they had
        if not any(self.bottlenecks):
            del data["bottlenecks"]  # likewise for weights with the full residual blocks
        else:
            data["bottlenecks"] = list(self.bottlenecks)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return cls(
            N=int(data["N"]),
            M=int(data["M"]),
            lambdas=tuple(float(v) for v in data["lambdas"]),
            embedding_dim=int(data["embedding_dim"]),
            machine_adapter=bool(data.get("machine_adapter", False)),
            adapter_width=int(data.get("adapter_width", 0)),
            bottlenecks=tuple(int(width) for width in data.get("bottlenecks", (0, 0, 0))),
        )


class PreferenceConditionalSynthesis(nn.Module):
    """g_s: latent y_hat and preference beta to an image in [0, 1] (unclipped)."""

    def __init__(
        self,
        N: int,
        M: int,
        embedding_dim: int,
        machine_adapter: bool = False,
        bottlenecks: Sequence[int] = (0, 0, 0),
        adapter_width: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = FourierPreferenceEmbedding(dim=embedding_dim)
        self.up = nn.ModuleList([deconv(M, N), deconv(N, N), deconv(N, N), deconv(N, 3)])
        self.gdn = nn.ModuleList([GDN(N, inverse=True) for _ in range(3)])
        self.blocks = nn.ModuleList([
            BottleneckResidualBlock(N, width, embedding_dim) if width else ShiftedResidualBlock(N, embedding_dim)
            for width in bottlenecks
        ])
        self.adapters = nn.ModuleList([MachineAdapter(N, adapter_width) for _ in range(3)]) if machine_adapter else None

    def forward(self, y_hat: Tensor, beta: Tensor) -> Tensor:
        beta = beta.to(y_hat.device)
        embedding = self.preference_embedding(beta, y_hat.shape[0])
        x = y_hat
        for index in range(len(self.blocks)):
            x = self.level(index, x, embedding, beta)[2]
        return self.up[3](x)

    def preference_embedding(self, beta: Tensor, batch: int) -> Tensor:
        """The embedding of ``beta`` (``(B,)`` or ``(1,)``), one row per sample of a batch of ``batch``."""
        embedding = self.embedding(beta)
        if embedding.shape[0] == 1 and batch > 1:
            embedding = embedding.expand(batch, -1)
        return embedding

    def level(
        self, index: int, x: Tensor, embedding: Tensor, beta: Tensor, adapt: bool = True
    ) -> "tuple[Tensor, Tensor, Tensor]":
        """Level ``index`` of g_s (0: lowest resolution) on ``x``: upsampling and inverse
        GDN, the residual block, then (with adapters, unless ``adapt`` is false) the
        machine adapter. Returns the block's input, the block's output and the level's
        output."""
        inner = self.gdn[index](self.up[index](x))
        block_output = self.blocks[index](inner, embedding)
        output = block_output if self.adapters is None or not adapt else self.adapters[index](block_output, beta)
        return inner, block_output, output


class UGHyperprior(nn.Module):
    """Variable-rate mean-scale hyperprior with a preference-conditional decoder.

    Spatial stride: 16 for y, 64 for z; inputs must be padded to a multiple of 64.

    Args:
        config: the sizes.
        coding_only: build only what coding runs in float (g_a, h_a, g_s and the
            gains); without the float h_s and the entropy models (the coder has integer
            and table copies of them), it loads faster and needs no scipy.
    """

    stride = 64

    def __init__(self, config: ModelConfig = ModelConfig(), coding_only: bool = False) -> None:
        super().__init__()
        N, M = config.N, config.M
        self.config = config
        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.h_a = nn.Sequential(
            conv3x3(M, N), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N)
        )
        if not coding_only:
            # Sub-pixel convolutions instead of transposed ones: the integer-exact copy
            # of h_s then needs only stride-1 convolutions and a pixel shuffle.
            self.h_s = nn.Sequential(
                subpel_conv3x3(N, M, 2),
                nn.ReLU(),
                subpel_conv3x3(M, M * 3 // 2, 2),
                nn.ReLU(),
                conv3x3(M * 3 // 2, 2 * M),
            )
        self.g_s = PreferenceConditionalSynthesis(
            N, M, config.embedding_dim, config.machine_adapter, config.bottlenecks, config.adapter_width
        )
        if not coding_only:
            self.entropy_bottleneck = _compressai.EntropyBottleneck(N)
            self.gaussian_conditional = _compressai.GaussianConditional(scale_table().tolist())

        lambdas = torch.tensor(config.lambdas, dtype=torch.float32)
        # Quantisation step ~ 1/gain and distortion ~ step^2, so gain ~ sqrt(lambda).
        initial = 0.5 * torch.log(lambdas / lambdas[len(lambdas) // 2])
        self.log_gain = nn.Parameter(initial[:, None].repeat(1, M))
        self.log_inverse_gain = nn.Parameter(-initial[:, None].repeat(1, M))

    # -- pieces shared by training and coding ------------------------------------------
    def gain(self, quality: Tensor) -> Tensor:
        return torch.exp(self.log_gain[quality])[:, :, None, None]

    def inverse_gain(self, quality: Tensor) -> Tensor:
        return torch.exp(self.log_inverse_gain[quality])[:, :, None, None]

    def synthesize(self, y_hat_scaled: Tensor, quality: Tensor, beta: Tensor) -> Tensor:
        """Decodes the gained, quantised latent to pixels (float, unclipped)."""
        return self.g_s(y_hat_scaled * self.inverse_gain(quality), beta)

    # -- training ------------------------------------------------------------------------
    def quantize(self, x: Tensor, quality: Tensor) -> "tuple[Tensor, Dict[str, Tensor]]":
        """Analysis and quantisation as the coder does it, differentiable for training.

        The rate uses additive noise (train) or rounding (eval), as compressai does; the
        latent passed on is rounded with a straight-through gradient, and z is rounded
        without a median offset, exactly as the coder rounds them.

        Returns:
            ``(y_hat_scaled, likelihoods)``: the gained quantised latent and the
            likelihoods ``y`` and ``z``.
        """
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_hat = straight_through_round(z)
        means, scales = self.h_s(z_hat).chunk(2, dim=1)
        gain = self.gain(quality)
        y_scaled, means, scales = y * gain, means * gain, scales * gain
        _, y_likelihoods = self.gaussian_conditional(y_scaled, scales, means=means)
        residual = y_scaled - means
        y_hat_scaled = straight_through_round(residual) + means
        return y_hat_scaled, {"y": y_likelihoods, "z": z_likelihoods}

    def forward(self, x: Tensor, quality: Tensor, beta: Tensor) -> Dict[str, Tensor]:
        """Training/evaluation pass.

        Args:
            x: images ``(B, 3, H, W)`` in [0, 1], H and W multiples of 64.
            quality: level index per sample ``(B,)``, int64.
            beta: preference per sample ``(B,)``, float.

        Returns:
            dict with ``x_hat`` and the ``likelihoods`` of ``y`` and ``z``.
        """
        y_hat_scaled, likelihoods = self.quantize(x, quality)
        return {"x_hat": self.synthesize(y_hat_scaled, quality, beta), "likelihoods": likelihoods}
