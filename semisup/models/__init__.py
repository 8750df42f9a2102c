"""Networks: the shared encoder, temporal pooling and heads."""

from semisup.models.encoder import Encoder
from semisup.models.heads import MLPHead
from semisup.models.pooling import TemporalPool
from semisup.models.trailer import TrailerModel

__all__ = ["Encoder", "MLPHead", "TemporalPool", "TrailerModel"]
