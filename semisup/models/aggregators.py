"""Temporal aggregators: a trailer's frame features, in time order, become one feature per task.

Each task of a recipe names its aggregator (``aggregator`` in its
``[[tasks]]`` table): ``mean`` and ``max`` ignore time; ``attention`` learns
which frames matter; ``gru``, ``lstm`` and ``transformer`` read the frames in
order, which is what telling a push (zoom in) from a pull (zoom out) takes:
the two hold the same frames in opposite order.

An aggregator receives padded sequences ``x (B, T, D)`` with a boolean mask
``(B, T)`` (True where a frame is; trailers have different frame counts),
returns ``(B, out_dim)``, and declares ``out_dim`` so the task head sizes
itself. Padding never changes the output. Every aggregator has an
``Options`` dataclass (the recipe's ``aggregator_options`` table) and the
common option ``motion``: feed the difference of consecutive frame features
beside the features (zero for the first frame). It is on by default for the
aggregators that read order (``gru``, ``lstm``, ``transformer``): on the
demo's shots the same bidirectional GRU without it never predicted Pull
(F1 0.00 on seed 0, against 0.46 ± 0.17 over three seeds with it; docs:
shot types).

Plug in your own like a pretext task: ``@register_aggregator("name")`` in
your package with an entry point in the ``semisup.aggregators`` group, or a
``package.module:Class`` path in the recipe.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from semisup.errors import SemisupError, check_option
from semisup.registry import Registry


def pad_packed(features: torch.Tensor, owner: torch.Tensor, num_trailers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed frame features (frames of a trailer contiguous, in time order) to a padded batch.

    Args:
        features: ``(N, D)`` features of all frames of the batch.
        owner: ``(N,)`` trailer index (0..B-1) of each frame, non-decreasing.
        num_trailers: B; every trailer owns at least one frame.

    Returns:
        ``x (B, T, D)`` (zeros where padded) and ``mask (B, T)`` bool, T the longest trailer.

    Example:
        >>> x, mask = pad_packed(torch.tensor([[1.], [2.], [3.]]), torch.tensor([0, 0, 1]), 2)
        >>> x.squeeze(-1), mask
        (tensor([[1., 2.],
                [3., 0.]]), tensor([[ True,  True],
                [ True, False]]))
    """
    counts = torch.bincount(owner, minlength=num_trailers)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(owner), device=owner.device) - starts[owner]
    longest = int(counts.max()) if len(owner) else 0
    x = features.new_zeros(num_trailers, longest, features.shape[1])
    x[owner, position] = features
    mask = torch.zeros(num_trailers, longest, dtype=torch.bool, device=features.device)
    mask[owner, position] = True
    return x, mask


class Aggregator(nn.Module, abc.ABC):
    """Base class: ``(B, T, D)`` frame features + ``(B, T)`` mask -> ``(B, out_dim)``.

    Subclasses set an ``Options`` dataclass (deriving from
    :class:`Aggregator.Options`), build their layers in ``__init__`` from
    ``self.options`` and ``self.in_dim`` (the feature width, doubled when
    ``motion`` is on), set ``self.out_dim``, and implement :meth:`aggregate`.

    Args:
        options: the aggregator's options.
        feature_dim: ``D``, the encoder's feature width.
    """

    name: ClassVar[str] = ""
    order_sensitive: ClassVar[bool] = False
    """True when the output depends on the order of the frames."""

    @dataclass(frozen=True)
    class Options:
        motion: bool = False
        """Feed consecutive differences of frame features beside the features."""

    def __init__(self, options: "Aggregator.Options", feature_dim: int) -> None:
        super().__init__()
        if not isinstance(options, self.Options):
            raise TypeError(f"{type(self).__name__} expects {self.Options.__qualname__}, got {type(options).__name__}")
        self.options = options
        self.in_dim = feature_dim * (2 if options.motion else 1)
        self.out_dim = self.in_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, T, D)``, mask ``(B, T)`` bool. Returns ``(B, out_dim)``."""
        if self.options.motion:
            x = torch.cat([x, motion_features(x, mask)], dim=-1)
        return self.aggregate(x, mask)

    def forward_unpadded(self, x: torch.Tensor) -> torch.Tensor:
        """The output of :meth:`forward` when every trailer of the batch has all ``T`` frames
        (no padding): what an exported model computes (``semisup export``).

        Exporters trace one graph for any ``B`` and ``T``; an aggregator whose :meth:`aggregate`
        has shapes that depend on the data (packed sequences) overrides this with a graph that
        has none. Args: x ``(B, T, D)``. Returns ``(B, out_dim)``.
        """
        return self(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))

    @abc.abstractmethod
    def aggregate(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The aggregation proper, on the (motion-augmented) sequence."""


def motion_features(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x[t] - x[t-1]`` for every real frame after the first, zero elsewhere.

    Example:
        >>> motion_features(torch.tensor([[[1.], [4.], [0.]]]), torch.tensor([[True, True, False]])).flatten()
        tensor([0., 3., 0.])
    """
    # written without in-place slices, so an exported graph keeps the frame count free
    valid = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, 1:] & mask[:, :-1]], dim=1)
    diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
    return diff.masked_fill(~valid.unsqueeze(-1), 0.0)


AGGREGATORS: Registry = Registry("aggregator", Aggregator, "semisup.aggregators", "semisup aggregator list")
"""Temporal aggregators by name: built-ins, ``semisup.aggregators`` entry points, ``module:Class`` paths."""

register_aggregator = AGGREGATORS.register
"""Class decorator that makes an aggregator available to recipes by name."""


def get_aggregator(name: str, where: str = "aggregator") -> type[Aggregator]:
    """Look up an aggregator class by name, entry point or ``module:Class`` path.

    Raises:
        SemisupError: unknown (with a did-you-mean) or broken plug-in.
    """
    return AGGREGATORS.get(name, where)


def build_aggregator(name: str, options: dict[str, Any] | Aggregator.Options | None, feature_dim: int
                     ) -> Aggregator:
    """An aggregator by name, with options given as its ``Options`` or a plain mapping.

    Raises:
        SemisupError: unknown name, or an aggregator whose output on a small padded batch is not
            ``(B, out_dim)`` (a plug-in that declares one width and returns another would
            otherwise fail only at validation, after a whole epoch of training).
        TypeError: an option the aggregator does not have.
    """
    cls = get_aggregator(name)
    if not isinstance(options, cls.Options):
        options = cls.Options(**(options or {}))
    aggregator = cls(options, feature_dim)
    check_output_width(aggregator, name, feature_dim)
    return aggregator


def check_output_width(aggregator: Aggregator, name: str, feature_dim: int) -> None:
    """Run ``aggregator`` once on two trailers of one frame each and check it returns ``(2, out_dim)``
    (one frame: every aggregator must take it, a transformer with ``max_frames = 1`` too).

    The probe is deterministic (no random numbers drawn, so seeded initialisation after it is
    unchanged) and runs in eval mode without gradients; the training mode is restored.

    Raises:
        SemisupError: the forward fails or returns another shape.
    """
    x = torch.linspace(-1.0, 1.0, 2 * feature_dim).reshape(2, 1, feature_dim)
    mask = torch.ones(2, 1, dtype=torch.bool)
    training = aggregator.training
    aggregator.eval()
    try:
        with torch.no_grad():
            out = aggregator(x, mask)
    except Exception as exc:  # any error inside a plug-in is the plug-in's
        raise SemisupError(f"aggregator {name!r}: fails on a batch of 2 trailers x 1 frame x {feature_dim} "
                           f"features: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                           ) from exc
    finally:
        aggregator.train(training)
    expected = (2, aggregator.out_dim)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SemisupError(f"aggregator {name!r}: declares out_dim = {aggregator.out_dim} but returns {got} "
                           f"for 2 trailers (expected {expected}); set self.out_dim to its output width")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1)


def _masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min).amax(1)


@register_aggregator("mean")
class MeanAggregator(Aggregator):
    """Mean of the frame features (order-free)."""

    def aggregate(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _masked_mean(x, mask)


@register_aggregator("max")
class MaxAggregator(Aggregator):
    """Element-wise max over the frames (order-free)."""

    def aggregate(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _masked_max(x, mask)


@register_aggregator("attention")
class AttentionAggregator(Aggregator):
    """Attention pooling: a learned score per frame, softmax over the frames, weighted sum (order-free)."""

    @dataclass(frozen=True)
    class Options(Aggregator.Options):
        hidden: int = 128

        def __post_init__(self) -> None:
            if self.hidden < 1:
                raise ValueError(f"hidden: expected a positive width, got {self.hidden}")

    def __init__(self, options: "AttentionAggregator.Options", feature_dim: int) -> None:
        super().__init__(options, feature_dim)
        self.score = nn.Sequential(nn.Linear(self.in_dim, options.hidden), nn.Tanh(), nn.Linear(options.hidden, 1))

    def aggregate(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(x).squeeze(-1).float().masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).to(x.dtype)
        return (weights.unsqueeze(-1) * x).sum(1)


class _Recurrent(Aggregator):
    """A GRU or LSTM over the frames, read out as its last state or the max over time."""

    order_sensitive = True
    cell: ClassVar[type[nn.RNNBase]]

    @dataclass(frozen=True)
    class Options(Aggregator.Options):
        motion: bool = True
        """Feed consecutive differences of frame features beside the features (on: order-aware)."""
        hidden: int = 256
        layers: int = 1
        bidirectional: bool = True
        readout: Literal["last", "max"] = "last"
        """last: the final state (both directions' when bidirectional); max: max over time of the outputs."""
        dropout: float = 0.0

        def __post_init__(self) -> None:
            if self.readout not in ("last", "max"):
                raise ValueError(f'readout: expected "last" or "max", got {self.readout!r}')
            check_option(self.hidden >= 1, "hidden", "a positive width", self.hidden)
            check_option(self.layers >= 1, "layers", "layers >= 1", self.layers)
            check_option(0 <= self.dropout < 1, "dropout", "0 <= dropout < 1", self.dropout)

    def __init__(self, options: "_Recurrent.Options", feature_dim: int) -> None:
        super().__init__(options, feature_dim)
        self.rnn = self.cell(self.in_dim, options.hidden, num_layers=options.layers, batch_first=True,
                             bidirectional=options.bidirectional, dropout=options.dropout if options.layers > 1 else 0)
        self.out_dim = options.hidden * (2 if options.bidirectional else 1)

    def aggregate(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x.float(), lengths, batch_first=True, enforce_sorted=False)
        with torch.autocast(x.device.type, enabled=False):  # recurrences in fp32
            output, state = self.rnn(packed)
        if self.options.readout == "max":
            padded, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
            return _masked_max(padded, mask)
        return self._readout(state, x.shape[0])

    def forward_unpadded(self, x: torch.Tensor) -> torch.Tensor:
        # no padding: the recurrence runs on the tensor itself; packing has data-dependent shapes
        # that torch.export cannot trace, and with every frame present it changes nothing
        if self.options.motion:
            x = torch.cat([x, motion_features(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))], -1)
        with torch.autocast(x.device.type, enabled=False):
            output, state = self.rnn(x.float())
        return output.amax(1) if self.options.readout == "max" else self._readout(state, x.shape[0])

    def _readout(self, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor], batch: int) -> torch.Tensor:
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        directions = 2 if self.options.bidirectional else 1
        return hidden[-directions:].transpose(0, 1).reshape(batch, -1)


@register_aggregator("gru")
class GRUAggregator(_Recurrent):
    """A (bidirectional) GRU over the frames in time order."""

    cell = nn.GRU


@register_aggregator("lstm")
class LSTMAggregator(_Recurrent):
    """A (bidirectional) LSTM over the frames in time order (readout = "max": the BiLSTM-max-pool model)."""

    cell = nn.LSTM


@register_aggregator("transformer")
class TransformerAggregator(Aggregator):
    """A small temporal transformer with learned position embeddings, read out from a class token."""

    order_sensitive = True

    @dataclass(frozen=True)
    class Options(Aggregator.Options):
        motion: bool = True
        """Feed consecutive differences of frame features beside the features (on: order-aware)."""
        dim: int = 256
        layers: int = 2
        heads: int = 4
        dropout: float = 0.1
        max_frames: int = 256
        """Longest sequence the position embeddings cover."""

        def __post_init__(self) -> None:
            for name in ("dim", "layers", "heads", "max_frames"):
                check_option(getattr(self, name) >= 1, name, f"{name} >= 1", getattr(self, name))
            check_option(self.dim % self.heads == 0, "dim", f"a multiple of heads ({self.heads})", self.dim)

    def __init__(self, options: "TransformerAggregator.Options", feature_dim: int) -> None:
        super().__init__(options, feature_dim)
        self.project = nn.Linear(self.in_dim, options.dim)
        self.token = nn.Parameter(torch.zeros(1, 1, options.dim))
        self.position = nn.Parameter(torch.randn(1, options.max_frames + 1, options.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(options.dim, options.heads, 2 * options.dim, options.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, options.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(options.dim)
        self.out_dim = options.dim

    def aggregate(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t = mask.shape
        if t > self.options.max_frames:
            raise ValueError(f"{t} frames per trailer, but the transformer aggregator's max_frames is "
                             f"{self.options.max_frames}")
        tokens = torch.cat([self.token.expand(b, -1, -1), self.project(x)], dim=1) + self.position[:, :t + 1]
        keep = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        return self.norm(self.encoder(tokens, src_key_padding_mask=~keep)[:, 0])
