"""Networks: the shared encoder, temporal aggregators and heads."""

from semisup.models.encoder import Encoder
from semisup.models.heads import MLPHead
from semisup.models.aggregators import AGGREGATORS, Aggregator, build_aggregator, register_aggregator
from semisup.models.trailer import TrailerModel
from semisup.models.video_encoder import ClipEncoder, create_encoder

__all__ = ["AGGREGATORS", "Aggregator", "ClipEncoder", "Encoder", "MLPHead", "TrailerModel", "build_aggregator",
           "create_encoder", "register_aggregator"]
