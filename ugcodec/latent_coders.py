"""The y section: one latent coder per container model id (bitstream_spec.md §8).

Every model shares the hyper-prior: ẑ gives, through the integer-exact h_s, exact means
``mu`` and coding-table indexes for every latent. A latent coder decides the rest of the
y section: which symbols are coded (and around which means), with which tables, and how
the section is laid out in streams.

* :class:`HyperpriorCoder` (model id 1): symbols ``round(y·gain − mu)``, one stream,
  the hyper-prior's tables.
* :class:`ChannelScalesCoder` (model id 2): the same symbols, one stream per channel
  slice, each slice's tables corrected by a channel context from the slices before it.
* :class:`ChannelMeansScalesCoder` (model id 3): as model id 2, and the context also
  corrects the means, so the symbols are the rounding of a better-predicted residual.

A coder's :meth:`~LatentCoder.encode` chooses the symbols and their exact parameters,
:meth:`~LatentCoder.compress` writes them as the y section, :meth:`~LatentCoder.decompress`
reads them back: ``decompress(compress(encode(r, mu, i)), mu, i) == encode(r, mu, i)``.
Modelled on compressai's ``latent_codecs``, but integer-exact: nothing here depends on a
float transform.

    >>> import torch
    >>> from ugcodec.entropy_coding import quantize_pmf
    >>> coder = HyperpriorCoder([quantize_pmf([0.25, 0.5, 0.25], offset=-1)])
    >>> residual = torch.tensor([0.2, -0.7, 1.4, 0.0], dtype=torch.float64).reshape(1, 1, 2, 2)
    >>> mu, index = torch.zeros_like(residual), torch.zeros(1, 1, 2, 2, dtype=torch.int64)
    >>> latent = coder.encode(residual, mu, index)
    >>> latent.symbols.flatten().tolist()
    [0, -1, 1, 0]
    >>> torch.equal(coder.decompress(coder.compress(latent), mu, index).symbols, latent.symbols)
    True
    >>> sorted(LATENT_CODERS)
    [1, 2, 3]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Sequence, Type

import torch
from torch import Tensor

from .channel_context import IntegerChannelContext
from .entropy_coding import CodingTable, decode_symbols, encode_symbols, join_streams, split_streams

__all__ = [
    "CodedLatent",
    "LatentCoder",
    "HyperpriorCoder",
    "ChannelScalesCoder",
    "ChannelMeansScalesCoder",
    "LATENT_CODERS",
]


@dataclass
class CodedLatent:
    """The latent as the y section codes it.

    Attributes:
        symbols: int64 ``(1, M, h, w)`` coded symbols.
        mu: float64 exact means of the gained latent that the symbols are coded around
            (``ŷ·gain = symbols + mu``).
        scale_index: int64 coding-table index of every symbol.
        mean_shift: float64 what the coder added to the hyper-prior's means
            (``mu = mu_hyper + mean_shift``; zero where it adds nothing, then possibly
            one zero broadcast to the latent's shape, a view to compute with, not to
            write into).
    """

    symbols: Tensor
    mu: Tensor
    scale_index: Tensor
    mean_shift: Tensor


def _no_shift(mu: Tensor) -> Tensor:
    """A zero mean shift shaped like ``mu``: one zero, broadcast (no latent-sized tensor)."""
    return torch.zeros((), dtype=torch.float64, device=mu.device).expand_as(mu)


class LatentCoder:
    """Codes the latent y of one model id. Subclasses set the class attributes.

    Args:
        tables: the y coding tables, one per scale index.
    """

    #: Container model id.
    model_id: ClassVar[int]
    #: The weights-file entry holding this coder's own parameters (None: it has none).
    bundle_key: ClassVar[Optional[str]] = None

    def __init__(self, tables: Sequence[CodingTable]) -> None:
        self.tables = list(tables)

    @classmethod
    def from_bundle(cls, bundle: dict, tables: Sequence[CodingTable], channels: int) -> "LatentCoder":
        """The coder of a weights dictionary whose model id is ``cls.model_id``.

        Raises:
            KeyError, ValueError: the coder's entry is missing or does not fit ``channels``.
        """
        return cls(tables)

    def encode(self, residual: Tensor, mu: Tensor, hyper_index: Tensor) -> CodedLatent:
        """Chooses the symbols of a latent.

        Args:
            residual: float64 ``y·gain − mu`` (integer values are their own rounding).
            mu: float64 exact hyper-prior means; hyper_index: int64 hyper-prior table indexes.
        """
        return CodedLatent(torch.round(residual).to(torch.int64), mu, hyper_index, _no_shift(mu))

    def compress(self, latent: CodedLatent) -> bytes:
        """The y section of a coded latent.

        Raises:
            SymbolRangeError: a symbol lies too far outside its table.
        """
        return encode_symbols(latent.symbols.numpy(), latent.scale_index.numpy(), self.tables)

    def decompress(self, section: bytes, mu: Tensor, hyper_index: Tensor) -> CodedLatent:
        """Inverse of :meth:`compress` given the hyper-prior's ``mu`` and ``hyper_index``.

        Raises:
            FormatError: the section is malformed.
        """
        symbols = torch.from_numpy(decode_symbols(section, hyper_index.numpy(), self.tables))
        return CodedLatent(symbols, mu, hyper_index, _no_shift(mu))


class HyperpriorCoder(LatentCoder):
    """Model id 1: the mean-scale hyperprior's own means and tables, one stream."""

    model_id = 1


class ChannelScalesCoder(LatentCoder):
    """Model id 2: channel-conditional tables (:mod:`ugcodec.channel_context`), one
    stream per slice (joined by :func:`~ugcodec.entropy_coding.join_streams`).

    Args:
        tables: the y coding tables.
        context: the integer channel context; its ``means`` must match the model id.
    """

    model_id = 2
    bundle_key = "scale_context"
    means: ClassVar[bool] = False

    def __init__(self, tables: Sequence[CodingTable], context: IntegerChannelContext) -> None:
        super().__init__(tables)
        if context.means != self.means:
            raise ValueError(f"model id {self.model_id} needs a context {'with' if self.means else 'without'} means")
        self.context = context

    @classmethod
    def from_bundle(cls, bundle: dict, tables: Sequence[CodingTable], channels: int) -> "ChannelScalesCoder":
        context = IntegerChannelContext.from_state_dict(bundle[cls.bundle_key], means=cls.means)
        context.check_channels(channels)
        return cls(tables, context)

    def encode(self, residual: Tensor, mu: Tensor, hyper_index: Tensor) -> CodedLatent:
        symbols, shift, index = self.context.encode(hyper_index, residual)
        return CodedLatent(symbols, mu + shift, index, shift)

    def compress(self, latent: CodedLatent) -> bytes:
        channels = self.context.slice_channels(latent.symbols.shape[1])
        streams = [
            encode_symbols(
                latent.symbols[:, k : k + channels].numpy(), latent.scale_index[:, k : k + channels].numpy(), self.tables
            )
            for k in range(0, latent.symbols.shape[1], channels)
        ]
        return join_streams(streams)

    def decompress(self, section: bytes, mu: Tensor, hyper_index: Tensor) -> CodedLatent:
        streams = split_streams(section, self.context.slices)
        symbols, shift, index = self.context.decode(
            hyper_index, lambda k, index: torch.from_numpy(decode_symbols(streams[k], index.numpy(), self.tables))
        )
        return CodedLatent(symbols, mu + shift, index, shift)


class ChannelMeansScalesCoder(ChannelScalesCoder):
    """Model id 3: channel-conditional means and tables, one stream per slice."""

    model_id = 3
    bundle_key = "channel_context"
    means = True


#: The latent coder of every model id.
LATENT_CODERS: Dict[int, Type[LatentCoder]] = {
    coder.model_id: coder for coder in (HyperpriorCoder, ChannelScalesCoder, ChannelMeansScalesCoder)
}


def coder_entries() -> List[str]:
    """Weights-file entries that belong to one latent coder or another."""
    return [coder.bundle_key for coder in LATENT_CODERS.values() if coder.bundle_key is not None]
