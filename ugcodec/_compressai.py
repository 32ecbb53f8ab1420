"""The compressai pieces ugcodec builds on, imported in one place.

compressai 1.2.8 calls ``torch.jit.script`` at import time, which torch 2.14 answers
with a FutureWarning on every run of the CLI; it is noise to a codec's user.
"""
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.layers import GDN, conv3x3, subpel_conv3x3
    from compressai.models.utils import conv, deconv

__all__ = ["EntropyBottleneck", "GaussianConditional", "GDN", "conv", "conv3x3", "deconv", "subpel_conv3x3"]
