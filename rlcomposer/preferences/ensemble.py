"""The reward ensemble: K scalar heads (:class:`MemberHeads`) on a melody representation, the
musical descriptors beside (optionally) the prior's GRU read over the melody (:class:`MelodyEncoder`).

Calling a :class:`RewardEnsemble` on a melody gives the members' mean score on the (calibrated)
Bradley–Terry scale; the members' disagreement is the uncertainty. Training is in
:mod:`rlcomposer.preferences.training`, saving and loading in
:mod:`rlcomposer.preferences.reward_model_io`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlcomposer.music.melody import HOLD, Melody
from rlcomposer.preferences.calibration import sigmoid
from rlcomposer.preferences.descriptors import DESCRIPTOR_NAMES, describe
from rlcomposer.preferences.labels import as_melody, describe_shape
from rlcomposer.preferences.reward_model_config import (
    SUMMARIES,
    RewardModelConfig,
    RewardModelError,
)
from rlcomposer.prior.model import ConditionBatch, MelodyCondition, MelodyPrior, PriorConfig


def prior_fingerprint(prior: MelodyPrior) -> str:
    """A short hash of a prior's weights: which prior a reward model was initialised from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(prior.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class MelodyEncoder(nn.Module):
    """A prior read over a whole melody: the GRU summary ``[B, feature_size]``.

    Holds a :class:`~rlcomposer.prior.model.MelodyPrior` (a copy of the prior's
    weights: :meth:`from_prior`) and runs its own ``embed`` and ``gru``, so the
    architecture is the prior's. The input at step ``t`` is token ``t-1`` with
    the metric position of ``t`` (BOS before step 0), exactly as the prior was
    trained; one extra step after the last token lets the final state see the
    whole melody. ``summary`` names what is read off: the states' ``mean``,
    ``max`` and ``last`` value, and the token embeddings' mean, max and min
    (``tokens``), in that order.
    """

    def __init__(self, config: PriorConfig, summary: Sequence[str] = ("mean", "last")):
        super().__init__()
        self.config = config
        self.summary = tuple(s for s in SUMMARIES if s in summary)
        self.prior = MelodyPrior(config)

    @classmethod
    def from_prior(cls, prior: MelodyPrior, summary: Sequence[str] = ("mean", "last")) -> MelodyEncoder:
        encoder = cls(prior.config, summary)
        encoder.prior.load_state_dict(prior.state_dict())
        encoder.eval()
        return encoder

    @property
    def feature_size(self) -> int:
        hidden = sum(s in self.summary for s in ("mean", "max", "last")) * self.config.hidden_size
        return hidden + (3 * self.config.embedding_dim if "tokens" in self.summary else 0)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor,
                condition: ConditionBatch | None = None, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Summaries of ``tokens`` (``lengths`` long); a conditioned prior is told each melody's
        length and ``condition``'s metre and mode (default 4/4 major). ``offsets`` ``[B]`` are the
        metric positions of step 0 (a pick-up's; default 0)."""
        batch, length = tokens.shape
        if not self.summary:
            return torch.zeros(batch, 0)
        if condition is None and self.config.conditioned:
            default = self.prior.condition_batch(MelodyCondition(), batch)
            condition = ConditionBatch(default.metre_ids, default.mode_ids, lengths.long())
        bos = torch.full((batch, 1), self.config.bos_token, dtype=tokens.dtype)
        steps = torch.arange(length + 1).view(1, -1).expand(batch, -1)
        if offsets is not None:
            steps = steps + offsets.view(-1, 1).long()
        output, _ = self.prior.gru(self.prior.embed(torch.cat([bos, tokens], dim=1), steps, condition))
        output = output[:, 1:]  # states that have read at least one token
        mask = (torch.arange(length).view(1, -1) < lengths.view(-1, 1)).unsqueeze(-1)
        count = lengths.view(-1, 1).clamp(min=1)
        parts = []
        if "mean" in self.summary:
            parts.append((output * mask).sum(1) / count)
        if "max" in self.summary:
            parts.append(output.masked_fill(~mask, float("-inf")).max(1).values)
        if "last" in self.summary:
            parts.append(output[torch.arange(batch), (lengths - 1).clamp(min=0)])
        if "tokens" in self.summary:
            played = self.prior.token_embedding(tokens)  # what was played, order aside
            parts += [(played * mask).sum(1) / count, played.masked_fill(~mask, float("-inf")).max(1).values,
                      played.masked_fill(~mask, float("inf")).min(1).values]
        return torch.cat(parts, dim=-1)


class MemberHeads(nn.Module):
    """The K members' scalar heads side by side (one batched computation), plus the
    scale and offset per member that map its score to z-scored stars.

    A head is (LayerNorm, with ``layer_norm``) → dropout → Linear(hidden) → GELU →
    Linear(1), or a linear map when ``hidden`` is 0. Input ``[N, F]`` (shared by
    the members) or ``[K, N, F]``; output ``[K, N]``.
    """

    def __init__(self, members: int, features: int, hidden: int, dropout: float = 0.0,
                 layer_norm: bool = False):
        super().__init__()
        self.members, self.features, self.hidden = members, features, hidden
        self.dropout = dropout
        self.layer_norm = layer_norm
        if layer_norm:
            self.norm_weight = nn.Parameter(torch.ones(members, features))
            self.norm_bias = nn.Parameter(torch.zeros(members, features))
        width = hidden or 1

        def uniform(*shape: int, fan_in: int) -> nn.Parameter:
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.weight1 = uniform(members, features, width, fan_in=features)
        self.bias1 = uniform(members, width, fan_in=features)
        if hidden:
            self.weight2 = uniform(members, hidden, fan_in=hidden)
            self.bias2 = uniform(members, fan_in=hidden)
        self.star_scale = nn.Parameter(torch.full((members,), 0.5))
        self.star_offset = nn.Parameter(torch.zeros(members))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.unsqueeze(0).expand(self.members, -1, -1) if features.dim() == 2 else features
        if self.layer_norm:
            x = F.layer_norm(x, (self.features,)) * self.norm_weight.unsqueeze(1) + self.norm_bias.unsqueeze(1)
        if self.dropout and self.training:
            x = F.dropout(x, self.dropout, training=True)
        h = torch.baddbmm(self.bias1.unsqueeze(1), x, self.weight1)  # [K, N, width]
        if not self.hidden:
            return h.squeeze(-1)
        return torch.bmm(F.gelu(h), self.weight2.unsqueeze(-1)).squeeze(-1) + self.bias2.unsqueeze(1)


def pad_melodies(token_rows: Sequence[np.ndarray | Melody]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows (or melodies) as one batch padded with holds, ``[N, longest]``, and their lengths ``[N]``."""
    token_rows = [np.asarray(r.tokens if isinstance(r, Melody) else r, dtype=np.int64) for r in token_rows]
    lengths = np.array([len(t) for t in token_rows], dtype=np.int64)
    if lengths.size and lengths.min() < 1:
        raise RewardModelError("a melody to score has no tokens")
    width = int(lengths.max()) if lengths.size else 1
    batch = np.full((len(token_rows), width), HOLD, dtype=np.int64)
    for i, row in enumerate(token_rows):
        batch[i, :len(row)] = row
    return torch.from_numpy(batch), torch.from_numpy(lengths)


def _melodies(melodies: Sequence[Melody | np.ndarray]) -> list[Melody]:
    """Melodies as they are, token arrays as melodies of 4/4 in C major without a pick-up."""
    return [as_melody(m, f"melody {i}") for i, m in enumerate(melodies)]


def melody_shape(melody: Melody) -> tuple[str, int, int]:
    """What a reward model records of the melodies it was trained on: metre, steps, pick-up."""
    return melody.metre.name, melody.num_steps, melody.pickup_steps


def _shape_text(shape: tuple[str, int, int]) -> str:
    metre, steps, pickup = shape
    return describe_shape(Melody(np.full(steps, HOLD), metre=metre, pickup_steps=pickup))


def encoder_condition(encoder: MelodyEncoder, melodies: Sequence[Melody]) -> tuple[ConditionBatch | None,
                                                                                   torch.Tensor]:
    """What the encoder is told of each melody: its metre, mode and length (a pick-up counts the rest of
    its bar, so bars are counted from the bar the pick-up ends), and the metric offset of step 0."""
    offsets = torch.tensor([m.metric_offset if m.pickup_steps else 0 for m in melodies], dtype=torch.long)
    conditions = [MelodyCondition(m.metre, m.key.mode, m.num_steps + (m.metric_offset if m.pickup_steps else 0))
                  for m in melodies]
    return encoder.prior.rows_condition_batch(conditions), offsets


class RewardEnsemble(nn.Module):
    """K reward members; calling it on a melody gives the mean score (a reward function).

    Buffers: ``input_mean`` / ``input_std`` (the standardisation of the heads'
    input, measured on prior melodies), ``offset`` (each member's centre) and
    ``temperature`` (divides every score: the calibration).
    """

    def __init__(self, prior_config: PriorConfig, config: RewardModelConfig, prior_hash: str,
                 metrics: dict[str, Any] | None = None,
                 shapes: Sequence[tuple[str, int, int]] | None = None):
        super().__init__()
        self.prior_config = prior_config
        self.config = config
        self.prior_hash = prior_hash
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.shapes: tuple[tuple[str, int, int], ...] | None = (
            None if shapes is None else tuple(sorted({(str(m), int(n), int(p)) for m, n, p in shapes})))
        """The (metre, steps, pick-up) of the melodies it was trained on; it scores those only.
        None: a reward model saved before melodies knew their metre (it read every melody as 4/4,
        and scores 4/4 melodies without a pick-up only)."""
        self.name = "reward model"
        """How its refusals name it (a loaded model: its directory)."""
        self.held_out_predictions: dict[str, np.ndarray] = {}
        """After training (not saved): each held-out comparison's index, predicted and uncalibrated
        P(A beats B) and target."""
        # no summary: the GRU is never run, and no copy of the prior is kept
        shared, own = bool(config.summary) and config.freeze_encoder, bool(config.summary) and not config.freeze_encoder
        self.encoder = MelodyEncoder(prior_config, config.summary) if shared else None
        self.encoders = nn.ModuleList(
            MelodyEncoder(prior_config, config.summary) for _ in range(config.ensemble_size)) if own else None
        summary_size = MelodyEncoder(prior_config, config.summary).feature_size
        if config.summary_components > summary_size:
            raise RewardModelError(f"summary_components {config.summary_components} is more than the "
                                   f"{summary_size} numbers of the GRU summary")
        self.encoder_features = config.summary_components or summary_size
        features = self.encoder_features + (len(DESCRIPTOR_NAMES) if config.descriptors else 0)
        if config.summary_components:
            self.register_buffer("summary_center", torch.zeros(summary_size))
            self.register_buffer("summary_projection", torch.zeros(summary_size, config.summary_components))
        self.heads = MemberHeads(config.ensemble_size, features, config.head_hidden, config.dropout,
                                 layer_norm=config.input_norm == "layer")
        self.register_buffer("input_mean", torch.zeros(features))
        self.register_buffer("input_std", torch.ones(features))
        self.register_buffer("offset", torch.zeros(config.ensemble_size))
        self.register_buffer("temperature", torch.ones(()))
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    @property
    def size(self) -> int:
        return self.config.ensemble_size

    def __repr__(self) -> str:
        return f"RewardEnsemble(K={self.size}, prior={self.prior_hash}, T={float(self.temperature):.2f})"

    # -------------------------------------------------------------- shapes
    def trained_on(self) -> str:
        """What it was trained on, in words."""
        if self.shapes is None:
            return ("melodies read as 4/4 (it was saved before melodies knew their metre): it scores 4/4 "
                    "melodies without a pick-up only")
        texts = [_shape_text(shape) for shape in self.shapes]
        return texts[0] if len(texts) == 1 else f"a mixture of {len(texts)} shapes: {'; '.join(texts)}"

    def accepts(self, melody: Melody | np.ndarray) -> bool:
        """Was it trained on melodies of this one's shape (metre, length, pick-up)?"""
        shape = melody_shape(as_melody(melody))
        if self.shapes is None:
            return shape[0] == "4/4" and shape[2] == 0
        return shape in self.shapes

    def check_shapes(self, melodies: Sequence[Melody]) -> None:
        """Raise one line naming what it was trained on if a melody is of a shape it was not."""
        for melody in melodies:
            if self.accepts(melody):
                continue
            if self.shapes is None:
                raise RewardModelError(
                    f"{self.name} was trained on melodies read as 4/4 (saved before melodies knew their metre), "
                    f"not on {describe_shape(melody)}: retrain it with `rlcomposer reward train`")
            raise RewardModelError(f"{self.name} was trained on {self.trained_on()}, not on "
                                   f"{describe_shape(melody)}: it scores only what it was trained on")

    # ------------------------------------------------------------- inputs
    def _standardise(self, raw: torch.Tensor) -> torch.Tensor:
        return ((raw - self.input_mean) / self.input_std).clamp(-5.0, 5.0)

    def _descriptor_part(self, rows: Sequence[Melody | np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(describe(_melodies(rows))).float()] if self.config.descriptors else []

    def encode(self, encoder: MelodyEncoder | None, rows: Sequence[Melody | np.ndarray]) -> torch.Tensor:
        """The GRU summary of melodies by ``encoder`` (each told its metre, mode, length and pick-up),
        ``[N, feature_size]``; ``[N, 0]`` without an encoder."""
        melodies = _melodies(rows)
        if encoder is None:
            return torch.zeros(len(melodies), 0)
        tokens, lengths = pad_melodies(melodies)
        condition, offsets = encoder_condition(encoder, melodies)
        return encoder(tokens, lengths, condition, offsets)

    def _combine(self, summary: torch.Tensor, descriptors: list[torch.Tensor]) -> torch.Tensor:
        """GRU summary (projected, with summary_components) beside the descriptors, standardised."""
        if self.config.summary_components:
            summary = (summary - self.summary_center) @ self.summary_projection
        return self._standardise(torch.cat([summary, *descriptors], dim=-1))

    def raw_inputs(self, rows: Sequence[Melody | np.ndarray], encoder: MelodyEncoder | None = None) -> torch.Tensor:
        """The heads' input before standardisation: GRU summary (projected) and descriptors, ``[N, F]``."""
        rows = _melodies(rows)
        summary = self.encode(encoder or self.encoder, rows)
        if self.config.summary_components:
            summary = (summary - self.summary_center) @ self.summary_projection
        return torch.cat([summary, *self._descriptor_part(rows)], dim=-1)

    def inputs(self, rows: Sequence[Melody | np.ndarray], encoder: MelodyEncoder | None = None) -> torch.Tensor:
        """The heads' input (standardised), ``[N, F]``."""
        return self._standardise(self.raw_inputs(rows, encoder))

    def _member_logits(self, rows: Sequence[Melody | np.ndarray]) -> torch.Tensor:
        """Each member's raw score ``[K, N]`` (before centring and temperature)."""
        rows = _melodies(rows)
        if self.encoders is None:
            return self.heads(self.inputs(rows))
        descriptors = self._descriptor_part(rows)
        stacked = torch.stack([self._combine(self.encode(enc, rows), descriptors) for enc in self.encoders])
        return self.heads(stacked)

    # ------------------------------------------------------------- scoring
    def member_scores(self, melodies: Sequence[Melody | np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Each member's score of each melody, ``[K, N]`` (calibrated Bradley–Terry scale, centred).

        Melodies are read in their own metre, key and pick-up (token arrays: 4/4 in C); one of a
        shape (metre, length, pick-up) it was not trained on raises one line naming what it was."""
        rows = _melodies(melodies)
        self.check_shapes(rows)
        if not rows:
            return np.zeros((self.size, 0))
        threads = torch.get_num_threads()
        torch.set_num_threads(min(threads, self.config.threads))
        try:
            chunks = []
            with torch.inference_mode():
                for start in range(0, len(rows), batch_size):
                    logits = self._member_logits(rows[start:start + batch_size])
                    chunks.append(((logits - self.offset.view(-1, 1)) / self.temperature).numpy())
        finally:
            torch.set_num_threads(threads)
        return np.concatenate(chunks, axis=1).astype(np.float64)

    def score_batch(self, melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """The reward of many melodies: the members' mean score, ``[N]``."""
        return self.member_scores(melodies).mean(axis=0)

    def __call__(self, melody: Melody) -> float:  # type: ignore[override]
        """The reward of one melody (the ensemble mean)."""
        return float(self.score_batch([melody])[0])

    def _pair_scores(self, pairs_a: Sequence[Melody | np.ndarray],
                     pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        if len(pairs_a) != len(pairs_b):
            raise RewardModelError(f"{len(pairs_a)} A melodies but {len(pairs_b)} B melodies")
        scores = self.member_scores(list(pairs_a) + list(pairs_b))
        n = len(pairs_a)
        return scores[:, :n] - scores[:, n:]

    def preference_probability(self, pairs_a: Sequence[Melody | np.ndarray],
                               pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """The ensemble's calibrated P(A beats B), ``[N]``: sigmoid of the difference of the rewards."""
        return sigmoid(self._pair_scores(pairs_a, pairs_b).mean(axis=0))

    def preference_probabilities(self, pairs_a: Sequence[Melody | np.ndarray],
                                 pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Each member's P(A beats B), ``[K, N]``."""
        return sigmoid(self._pair_scores(pairs_a, pairs_b))

    def preference_variance(self, pairs_a: Sequence[Melody | np.ndarray],
                            pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Variance across members of P(A beats B), ``[N]``: where the ensemble disagrees."""
        return self.preference_probabilities(pairs_a, pairs_b).var(axis=0)



__all__ = ["MelodyEncoder", "MemberHeads", "RewardEnsemble", "encoder_condition", "melody_shape", "pad_melodies",
           "prior_fingerprint"]
