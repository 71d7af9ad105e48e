"""Decoder heads, one file each: each declares the encoder maps it reads (``DecodeHead``)."""

from nrdseg.models.heads.base import DecodeHead
from nrdseg.models.heads.bilinear import BilinearHead
from nrdseg.models.heads.carafe import CARAFEHead
from nrdseg.models.heads.deeplabv3plus import DeepLabV3PlusHead
from nrdseg.models.heads.duc import DUCHead
from nrdseg.models.heads.dupsampling import DUpsamplingHead
from nrdseg.models.heads.dysample import DeepLabV3PlusDySampleHead, DySampleHead
from nrdseg.models.heads.fade import FADEHead
from nrdseg.models.heads.fcn import FCNHead
from nrdseg.models.heads.freqfusion import FreqFusionHead
from nrdseg.models.heads.ifa import IFAHead
from nrdseg.models.heads.nrd import NRDHead
from nrdseg.models.heads.sapa import SAPAHead
from nrdseg.models.heads.segformer import SegFormerHead, SegFormerLinearHead

__all__ = [
    "BilinearHead",
    "CARAFEHead",
    "DUCHead",
    "DUpsamplingHead",
    "DecodeHead",
    "DeepLabV3PlusDySampleHead",
    "DeepLabV3PlusHead",
    "DySampleHead",
    "FADEHead",
    "FCNHead",
    "FreqFusionHead",
    "IFAHead",
    "NRDHead",
    "SAPAHead",
    "SegFormerHead",
    "SegFormerLinearHead",
]
