"""The reward model: what listeners like, learnt from their ratings.

An ensemble of K members. Each member is a melody *encoder* initialised from
the prior's weights (its token/position embeddings and GRU: a reward model
trained from scratch on a few hundred labels is near chance) and a small
scalar *head* on the encoder's mean-pooled, max-pooled and last GRU states and
the mean / max / min of the prior's token embeddings over the melody.

Training (:func:`train_reward_model`):

* pairwise comparisons with Bradley–Terry: P(A beats B) = sigmoid(r(A) - r(B)),
  binary cross-entropy with target 1 (A), 0 (B) or ½ (tie); skips are ignored;
* star ratings z-scored per rater (each rater's own mean and spread, so a
  generous rater and a strict one mean the same), fitted by regression:
  ``a · r(melody) + b ≈ z`` with a learnt scale ``a`` and offset ``b`` per
  member, weighted by ``star_weight``;
* a held-out split *by comparison* (``validation_fraction``); each member is
  trained on a bootstrap resample of the remaining comparisons (and stars);
* with ``freeze_encoder`` (the default) the encoder is shared and frozen, its
  features are computed once and only the heads train (seconds, and scoring
  runs the GRU once for all members); otherwise each member fine-tunes its own
  copy of the encoder at ``encoder_learning_rate``.

The reward (``ensemble(melody)``, :meth:`RewardEnsemble.score_batch`) is the
members' mean score on the Bradley–Terry scale: a difference of 1 between two
melodies means the model expects the first to win 73% of comparisons. It is
centred on the training melodies. The members' disagreement is the
uncertainty (:meth:`RewardEnsemble.preference_variance`, used by active
selection).

Saved as a model directory of kind ``reward-model`` (weights only, see
:mod:`rlcomposer.checkpoints`); its config records a hash of the prior it was
initialised from, so a reward model is never used with another prior by mistake.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlcomposer.checkpoints import CONFIG_FILE, CheckpointError, read_model_dir, save_model_dir
from rlcomposer.config import ConfigError, config_from_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import HOLD, Melody
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.prior.model import MelodyPrior, PriorConfig, load_prior

KIND = "reward-model"


class RewardModelError(RLComposerError):
    """Training data or a setting the reward model cannot work with."""


# -------------------------------------------------------------------- config
@dataclass(frozen=True)
class RewardModelConfig:
    """How a reward model is trained. Stored with every reward-model checkpoint."""

    ensemble_size: int = 3
    """K: members, each trained on its own bootstrap resample of the training comparisons (3 or more)."""
    epochs: int = 60
    """Passes over each member's (resampled) training comparisons."""
    learning_rate: float = 3e-3
    """Adam learning rate of the heads."""
    weight_decay: float = 1e-3
    """AdamW weight decay of the heads (and of a fine-tuned encoder)."""
    validation_fraction: float = 0.2
    """Share of comparisons held out (split by comparison) to measure accuracy, log-loss and calibration."""
    star_weight: float = 0.5
    """Weight of the star-rating loss (per-rater z-scored stars, regression) beside the comparison loss."""
    freeze_encoder: bool = True
    """Keep the prior's encoder fixed and train only the heads (fast); False fine-tunes a copy per member."""
    encoder_learning_rate: float = 3e-4
    """Learning rate of a fine-tuned encoder (only when freeze_encoder is false)."""
    head_hidden: int = 64
    """Width of each member's head (one hidden layer)."""
    batch_size: int = 64
    """Comparisons per gradient step."""
    min_comparisons: int = 20
    """Fewest usable (non-skip) comparisons to train on; fewer is an error."""
    calibration_bins: int = 10
    """Bins of the expected calibration error (ECE) on the held-out comparisons."""
    seed: int = 0
    """Fixes the split, the bootstrap resamples and the initial heads."""
    threads: int = 1
    """Torch CPU threads (the heads are small: more threads mostly contend on a shared machine)."""
    prior: str = "prior"
    """The prior whose weights initialise the encoder: ``prior`` (shipped) or a model directory."""

    def __post_init__(self) -> None:
        if self.ensemble_size < 3:
            raise ValueError(f"ensemble_size {self.ensemble_size} must be at least 3")
        if self.epochs < 1 or self.batch_size < 1 or self.head_hidden < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size, head_hidden and threads must be at least 1")
        if not 0.0 < self.validation_fraction < 0.9:
            raise ValueError(f"validation_fraction {self.validation_fraction} must be between 0 and 0.9")
        if self.star_weight < 0 or self.learning_rate <= 0 or self.encoder_learning_rate <= 0 \
                or self.weight_decay < 0:
            raise ValueError("star_weight and weight_decay must be 0 or more, learning rates positive")
        if self.min_comparisons < 5:
            raise ValueError(f"min_comparisons {self.min_comparisons} must be at least 5")
        if self.calibration_bins < 1:
            raise ValueError("calibration_bins must be at least 1")


# ---------------------------------------------------------------------- data
@dataclass(frozen=True)
class PairLabel:
    """One comparison: ``choice`` is ``a``, ``b``, ``tie`` or ``skip`` (about tokens_a / tokens_b)."""

    tokens_a: np.ndarray
    tokens_b: np.ndarray
    choice: str
    rater: str = "unknown"
    melody_a_id: int | None = None
    melody_b_id: int | None = None


@dataclass(frozen=True)
class StarLabel:
    """One star rating (1-5) of a melody by a rater."""

    tokens: np.ndarray
    stars: int
    rater: str = "unknown"
    melody_id: int | None = None


@dataclass
class RatingData:
    """Ratings read from the store, ready to train on."""

    comparisons: list[PairLabel] = field(default_factory=list)
    stars: list[StarLabel] = field(default_factory=list)
    tag: str | None = None
    rater: str | None = None

    def summary(self) -> dict[str, Any]:
        choices = {c: sum(1 for p in self.comparisons if p.choice == c) for c in ("a", "b", "tie", "skip")}
        return {"comparisons": len(self.comparisons), "choices": choices, "stars": len(self.stars),
                "raters": sorted({p.rater for p in self.comparisons} | {s.rater for s in self.stars})}


def load_training_data(store, tag: str | None = None, rater: str | None = None) -> RatingData:
    """Every comparison and star rating in ``store`` (melodies of ``tag``, by ``rater``, if given)."""
    tags = [tag] if tag else None
    raters = {r.id: r.name for r in store.raters()}
    if rater is not None and rater not in raters.values():
        raise RewardModelError(f"rater {rater!r} has no ratings in the database "
                               f"(raters: {', '.join(sorted(raters.values())) or 'none'})")
    comparisons = [c for c in store.comparisons(tags) if rater is None or raters[c.rater_id] == rater]
    stars = [s for s in store.ratings(tags) if rater is None or raters[s.rater_id] == rater]
    ids = {c.melody_a_id for c in comparisons} | {c.melody_b_id for c in comparisons} | {
        s.melody_id for s in stars}
    melodies = store.get_melodies(ids) if ids else {}
    tokens = {i: np.asarray(r.melody.tokens, dtype=np.int64) for i, r in melodies.items()}
    return RatingData(
        comparisons=[PairLabel(tokens[c.melody_a_id], tokens[c.melody_b_id], c.choice, raters[c.rater_id],
                               c.melody_a_id, c.melody_b_id) for c in comparisons],
        stars=[StarLabel(tokens[s.melody_id], s.stars, raters[s.rater_id], s.melody_id) for s in stars],
        tag=tag, rater=rater)


# --------------------------------------------------------------------- model
def prior_fingerprint(prior: MelodyPrior) -> str:
    """A short hash of a prior's weights: which prior a reward model was initialised from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(prior.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class MelodyEncoder(nn.Module):
    """The prior's embeddings and GRU, read over a whole melody: features ``[B, 3H + 3E]``
    (GRU states: mean, max, last; token embeddings: mean, max, min).

    The input at step ``t`` is token ``t-1`` with the metric position of ``t``
    (BOS before step 0), exactly as the prior was trained; one extra step after
    the last token lets the final state see the whole melody.
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size + 1, config.embedding_dim)
        self.beat_embedding = nn.Embedding(config.steps_per_bar, config.embedding_dim)
        self.bar_embedding = nn.Embedding(config.bars_per_phrase, config.embedding_dim)
        self.gru = nn.GRU(config.embedding_dim, config.hidden_size, num_layers=config.num_layers,
                          batch_first=True)

    @classmethod
    def from_prior(cls, prior: MelodyPrior) -> MelodyEncoder:
        encoder = cls(prior.config)
        state = {k: v for k, v in prior.state_dict().items() if not k.startswith("head.")}
        encoder.load_state_dict(state)
        return encoder

    @property
    def feature_size(self) -> int:
        return 3 * self.config.hidden_size + 3 * self.config.embedding_dim

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        bos = torch.full((batch, 1), self.config.bos_token, dtype=tokens.dtype)
        inputs = torch.cat([bos, tokens], dim=1)
        steps = torch.arange(length + 1).view(1, -1)
        beat = steps % self.config.steps_per_bar
        bar = (steps // self.config.steps_per_bar) % self.config.bars_per_phrase
        embedded = self.token_embedding(inputs) + self.beat_embedding(beat) + self.bar_embedding(bar)
        output, _ = self.gru(embedded)  # [B, T+1, H]; state t has read tokens < t
        output = output[:, 1:]  # states that have read at least one token
        mask = (torch.arange(length).view(1, -1) < lengths.view(-1, 1)).unsqueeze(-1)
        mean = (output * mask).sum(1) / lengths.view(-1, 1).clamp(min=1)
        largest = output.masked_fill(~mask, float("-inf")).max(1).values
        last = output[torch.arange(batch), (lengths - 1).clamp(min=0)]
        tokens_in = self.token_embedding(tokens)  # what was played, order aside
        token_mean = (tokens_in * mask).sum(1) / lengths.view(-1, 1).clamp(min=1)
        token_max = tokens_in.masked_fill(~mask, float("-inf")).max(1).values
        token_min = tokens_in.masked_fill(~mask, float("inf")).min(1).values
        return torch.cat([mean, largest, last, token_mean, token_max, token_min], dim=-1)


class RewardHead(nn.Module):
    """A member's scalar head, plus the scale and offset that map its score to z-scored stars."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1))
        self.star_scale = nn.Parameter(torch.tensor(0.5))
        self.star_offset = nn.Parameter(torch.tensor(0.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


def _pad(token_rows: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = np.array([len(t) for t in token_rows], dtype=np.int64)
    if lengths.size and lengths.min() < 1:
        raise RewardModelError("a melody to score has no tokens")
    width = int(lengths.max()) if lengths.size else 1
    batch = np.full((len(token_rows), width), HOLD, dtype=np.int64)
    for i, row in enumerate(token_rows):
        batch[i, :len(row)] = row
    return torch.from_numpy(batch), torch.from_numpy(lengths)


def _token_rows(melodies: Sequence[Melody | np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(m.tokens if isinstance(m, Melody) else m, dtype=np.int64) for m in melodies]


class RewardEnsemble(nn.Module):
    """K reward members; calling it on a melody gives the mean score (a reward function)."""

    def __init__(self, prior_config: PriorConfig, config: RewardModelConfig, prior_hash: str,
                 metrics: dict[str, Any] | None = None):
        super().__init__()
        self.prior_config = prior_config
        self.config = config
        self.prior_hash = prior_hash
        self.metrics: dict[str, Any] = dict(metrics or {})
        shared = config.freeze_encoder
        self.encoder = MelodyEncoder(prior_config) if shared else None
        self.encoders = None if shared else nn.ModuleList(
            MelodyEncoder(prior_config) for _ in range(config.ensemble_size))
        features = 3 * prior_config.hidden_size + 3 * prior_config.embedding_dim
        self.heads = nn.ModuleList(RewardHead(features, config.head_hidden)
                                   for _ in range(config.ensemble_size))
        self.register_buffer("offset", torch.zeros(config.ensemble_size))
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    @property
    def size(self) -> int:
        return len(self.heads)

    def __repr__(self) -> str:
        return f"RewardEnsemble(K={self.size}, prior={self.prior_hash})"

    # ------------------------------------------------------------- scoring
    def _member_logits(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            features = self.encoder(tokens, lengths)
            return torch.stack([head(features) for head in self.heads])
        assert self.encoders is not None
        return torch.stack([head(enc(tokens, lengths)) for enc, head in zip(self.encoders, self.heads, strict=False)])

    def member_scores(self, melodies: Sequence[Melody | np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Each member's score of each melody, ``[K, N]`` (Bradley–Terry scale, centred)."""
        rows = _token_rows(melodies)
        if not rows:
            return np.zeros((self.size, 0))
        threads = torch.get_num_threads()
        torch.set_num_threads(min(threads, self.config.threads))
        try:
            chunks = []
            with torch.inference_mode():
                for start in range(0, len(rows), batch_size):
                    tokens, lengths = _pad(rows[start:start + batch_size])
                    chunks.append((self._member_logits(tokens, lengths) - self.offset.view(-1, 1)).numpy())
        finally:
            torch.set_num_threads(threads)
        return np.concatenate(chunks, axis=1).astype(np.float64)

    def score_batch(self, melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """The reward of many melodies: the members' mean score, ``[N]``."""
        return self.member_scores(melodies).mean(axis=0)

    def __call__(self, melody: Melody) -> float:  # type: ignore[override]
        """The reward of one melody (the ensemble mean)."""
        return float(self.score_batch([melody])[0])

    def preference_probabilities(self, pairs_a: Sequence[Melody | np.ndarray],
                                 pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Each member's P(A beats B), ``[K, N]``."""
        if len(pairs_a) != len(pairs_b):
            raise RewardModelError(f"{len(pairs_a)} A melodies but {len(pairs_b)} B melodies")
        scores = self.member_scores(list(pairs_a) + list(pairs_b))
        n = len(pairs_a)
        return _sigmoid(scores[:, :n] - scores[:, n:])

    def preference_variance(self, pairs_a: Sequence[Melody | np.ndarray],
                            pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Variance across members of P(A beats B), ``[N]``: where the ensemble disagrees."""
        return self.preference_probabilities(pairs_a, pairs_b).var(axis=0)

    def preference(self, pairs_a, pairs_b) -> np.ndarray:
        """The ensemble's P(A beats B) (mean over members), ``[N]``."""
        return self.preference_probabilities(pairs_a, pairs_b).mean(axis=0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


# ----------------------------------------------------------------- training
def _resolve_prior(prior: MelodyPrior | str | Path | None, config: RewardModelConfig) -> MelodyPrior:
    if isinstance(prior, MelodyPrior):
        return prior
    spec = config.prior if prior is None else str(prior)
    return load_prior(spec)


def evaluate_pairs(probabilities: np.ndarray, targets: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Accuracy (ties count ½ when the model says 50%... i.e. non-tie pairs only), log-loss and ECE.

    ``probabilities``: predicted P(A beats B); ``targets``: 1, 0 or ½ (tie).
    Accuracy and ECE use the non-tie pairs; log-loss uses every pair.
    """
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    targets = np.asarray(targets, dtype=np.float64)
    decided = targets != 0.5
    result: dict[str, Any] = {"pairs": int(targets.size), "decided_pairs": int(decided.sum())}
    if targets.size:
        result["log_loss"] = float(-np.mean(targets * np.log(probabilities)
                                            + (1 - targets) * np.log(1 - probabilities)))
    else:
        result["log_loss"] = None
    if decided.any():
        p, y = probabilities[decided], targets[decided]
        correct = np.where(p == 0.5, 0.5, ((p > 0.5) == (y == 1)).astype(np.float64))
        result["accuracy"] = float(correct.mean())
        edges = np.linspace(0, 1, bins + 1)
        which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
        ece = 0.0
        for b in range(bins):
            members = which == b
            if members.any():
                ece += members.mean() * abs(p[members].mean() - y[members].mean())
        result["ece"] = float(ece)
    else:
        result["accuracy"] = None
        result["ece"] = None
    return result


def train_reward_model(comparisons: Sequence[PairLabel], star_ratings: Sequence[StarLabel],
                       config: RewardModelConfig = RewardModelConfig(),
                       prior: MelodyPrior | str | Path | None = None,
                       log: Callable[[str], None] | None = print) -> RewardEnsemble:
    """Train a reward ensemble on comparisons and star ratings (see the module docstring).

    Too few usable comparisons raise :class:`RewardModelError` saying how many
    are needed. The returned ensemble's ``metrics`` hold the held-out accuracy,
    log-loss and ECE, and the counts and raters of the data it saw.
    """
    say = log or (lambda _message: None)
    started = time.monotonic()
    usable = [c for c in comparisons if c.choice in CHOICE_SCORE]
    unknown = sorted({c.choice for c in comparisons if c.choice not in CHOICE_SCORE and c.choice != "skip"})
    if unknown:
        raise RewardModelError(f"comparison choice {unknown[0]!r} must be a, b, tie or skip")
    skipped = len(comparisons) - len(usable)
    if len(usable) < config.min_comparisons:
        raise RewardModelError(
            f"too few ratings to train a reward model: {len(usable)} usable comparisons (not skipped)"
            f"{f' and {skipped} skipped' if skipped else ''}; at least {config.min_comparisons} are needed"
            " (collect more with the app or `rlcomposer ratings simulate`)")
    for s in star_ratings:
        if not 1 <= int(s.stars) <= 5:
            raise RewardModelError(f"star rating {s.stars} is outside 1-5")
    prior_model = _resolve_prior(prior, config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(usable, list(star_ratings), skipped, config, prior_model, say, started)
    finally:
        torch.set_num_threads(threads)


def _train(usable: list[PairLabel], stars: list[StarLabel], skipped: int, config: RewardModelConfig,
           prior: MelodyPrior, say: Callable[[str], None], started: float) -> RewardEnsemble:
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    # unique melodies
    index: dict[bytes, int] = {}
    rows: list[np.ndarray] = []

    def melody_index(tokens: np.ndarray) -> int:
        tokens = np.asarray(tokens, dtype=np.int64)
        key = tokens.tobytes()
        if key not in index:
            index[key] = len(rows)
            rows.append(tokens)
        return index[key]

    pair_a = np.array([melody_index(c.tokens_a) for c in usable])
    pair_b = np.array([melody_index(c.tokens_b) for c in usable])
    targets = np.array([CHOICE_SCORE[c.choice] for c in usable])
    star_index = np.array([melody_index(s.tokens) for s in stars], dtype=np.int64)
    star_z = _zscore_per_rater(stars)

    order = rng.permutation(len(usable))
    n_val = max(2, int(round(config.validation_fraction * len(usable))))
    val, train = order[:n_val], order[n_val:]
    say(f"reward model: {len(usable)} comparisons ({len(train)} train, {len(val)} held out), "
        f"{skipped} skipped, {len(stars)} star ratings, {len(rows)} melodies, K={config.ensemble_size}")

    ensemble = RewardEnsemble(prior.config, config, prior_fingerprint(prior))
    base_encoder = MelodyEncoder.from_prior(prior)
    base_encoder.eval()
    tokens_all, lengths_all = _pad(rows)
    cached: torch.Tensor | None = None
    if config.freeze_encoder:
        with torch.no_grad():
            cached = torch.cat([base_encoder(tokens_all[s:s + 512], lengths_all[s:s + 512])
                                for s in range(0, len(rows), 512)])
        ensemble.encoder.load_state_dict(base_encoder.state_dict())

    for k in range(config.ensemble_size):
        boot = rng.choice(train, size=len(train), replace=True)
        star_boot = rng.choice(len(stars), size=len(stars), replace=True) if stars else np.zeros(0, int)
        head = RewardHead(base_encoder.feature_size, config.head_hidden)
        encoder = None if config.freeze_encoder else copy.deepcopy(base_encoder)
        groups = [{"params": head.parameters(), "lr": config.learning_rate}]
        if encoder is not None:
            encoder.train()
            groups.append({"params": encoder.parameters(), "lr": config.encoder_learning_rate})
        optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay, foreach=True)
        steps_per_epoch = max(1, math.ceil(len(boot) / config.batch_size))
        for _epoch in range(config.epochs):
            perm = rng.permutation(len(boot))
            star_perm = rng.permutation(len(star_boot)) if len(star_boot) else star_boot
            star_batch = max(1, math.ceil(len(star_boot) / steps_per_epoch)) if len(star_boot) else 0
            total = 0.0
            for step in range(steps_per_epoch):
                batch = boot[perm[step * config.batch_size:(step + 1) * config.batch_size]]
                if batch.size == 0:
                    continue
                sbatch = star_boot[star_perm[step * star_batch:(step + 1) * star_batch]] if star_batch else \
                    np.zeros(0, int)
                if cached is not None:  # the head on every melody is cheaper than gathering
                    scores = head(cached)
                    ia, ib = torch.from_numpy(pair_a[batch]), torch.from_numpy(pair_b[batch])
                    position = None
                else:
                    assert encoder is not None
                    needed = np.unique(np.concatenate([pair_a[batch], pair_b[batch], star_index[sbatch]]))
                    position = {m: i for i, m in enumerate(needed.tolist())}
                    scores = head(encoder(tokens_all[torch.from_numpy(needed)],
                                          lengths_all[torch.from_numpy(needed)]))
                    ia = torch.tensor([position[m] for m in pair_a[batch].tolist()])
                    ib = torch.tensor([position[m] for m in pair_b[batch].tolist()])
                loss = F.binary_cross_entropy_with_logits(
                    scores[ia] - scores[ib], torch.from_numpy(targets[batch]).float())
                if len(sbatch) and config.star_weight > 0:
                    js = (torch.from_numpy(star_index[sbatch]) if position is None
                          else torch.tensor([position[m] for m in star_index[sbatch].tolist()]))
                    predicted = head.star_scale * scores[js] + head.star_offset
                    loss = loss + config.star_weight * F.mse_loss(
                        predicted, torch.from_numpy(star_z[sbatch]).float())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
        head.eval()
        ensemble.heads[k].load_state_dict(head.state_dict())
        if encoder is not None:
            encoder.eval()
            assert ensemble.encoders is not None
            ensemble.encoders[k].load_state_dict(encoder.state_dict())
        say(f"  member {k + 1}/{config.ensemble_size}: final training loss {total / steps_per_epoch:.3f}")
    for parameter in ensemble.parameters():
        parameter.requires_grad_(False)
    # centre each member on the training melodies
    ensemble.offset.zero_()
    train_melodies = np.unique(np.concatenate([pair_a[train], pair_b[train], star_index]))
    member = ensemble.member_scores([rows[i] for i in train_melodies])
    ensemble.offset.copy_(torch.from_numpy(member.mean(axis=1)).float())

    scores = ensemble.member_scores(rows)  # [K, M]
    probabilities = _sigmoid(scores[:, pair_a] - scores[:, pair_b])  # [K, P]
    held_out = evaluate_pairs(probabilities[:, val].mean(0), targets[val], config.calibration_bins)
    in_sample = evaluate_pairs(probabilities[:, train].mean(0), targets[train], config.calibration_bins)
    member_accuracy = [evaluate_pairs(probabilities[k, val], targets[val])["accuracy"]
                       for k in range(config.ensemble_size)]
    raters = sorted({c.rater for c in usable} | {s.rater for s in stars})
    metrics = {
        "held_out": held_out,
        "train": in_sample,
        "member_held_out_accuracy": member_accuracy,
        "held_out_preference_variance": float(probabilities[:, val].var(0).mean()),
        "data": {
            "comparisons": len(usable) + skipped, "usable_comparisons": len(usable), "skipped": skipped,
            "ties": int(np.sum(targets == 0.5)), "train_comparisons": int(len(train)),
            "held_out_comparisons": int(len(val)), "stars": len(stars), "melodies": len(rows),
            "raters": raters,
        },
        "prior_hash": ensemble.prior_hash,
        "seconds": time.monotonic() - started,
    }
    ensemble.metrics = metrics
    acc = held_out["accuracy"]
    say(f"held-out: accuracy {_fmt(acc)}, log-loss {_fmt(held_out['log_loss'])}, "
        f"ECE {_fmt(held_out['ece'])} on {held_out['pairs']} comparisons "
        f"(train accuracy {_fmt(in_sample['accuracy'])}; {metrics['seconds']:.1f}s)")
    return ensemble


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _zscore_per_rater(stars: Sequence[StarLabel]) -> np.ndarray:
    """Stars z-scored within each rater (a rater with one value everywhere gets 0)."""
    values = np.array([float(s.stars) for s in stars], dtype=np.float64)
    result = np.zeros_like(values)
    by_rater: dict[str, list[int]] = {}
    for i, s in enumerate(stars):
        by_rater.setdefault(s.rater, []).append(i)
    for indices in by_rater.values():
        chosen = values[indices]
        std = chosen.std()
        result[indices] = (chosen - chosen.mean()) / std if std > 0 else 0.0
    return result


# -------------------------------------------------------------- save / load
def save_reward_model(ensemble: RewardEnsemble, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (weights, config with the prior's hash, metrics)."""
    state = {k: v for k, v in ensemble.state_dict().items()}
    return save_model_dir(out_dir, KIND, ensemble.prior_config, state, ensemble.config, ensemble.metrics,
                          extra_config={"prior_hash": ensemble.prior_hash})


def _expected_hash(expected_prior: MelodyPrior | str | Path | None) -> str | None:
    if expected_prior is None:
        return None
    if isinstance(expected_prior, MelodyPrior):
        return prior_fingerprint(expected_prior)
    spec = str(expected_prior)
    if spec == "prior" or Path(spec).is_dir():
        return prior_fingerprint(load_prior(spec))
    return spec  # a hash


def load_reward_model(directory: str | Path,
                      expected_prior: MelodyPrior | str | Path | None = None) -> RewardEnsemble:
    """Load a reward-model directory; with ``expected_prior`` (a prior, a prior
    directory, ``prior`` or a hash) refuse one initialised from another prior."""
    files = read_model_dir(directory, expected_kinds=(KIND,))
    where = f"{directory}/{CONFIG_FILE}"
    try:
        prior_config = config_from_dict(PriorConfig, files.config["model"], where)
        config = config_from_dict(RewardModelConfig, files.config.get("training", {}), where)
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    prior_hash = files.config.get("prior_hash")
    if not isinstance(prior_hash, str):
        raise CheckpointError(f"{where}: no prior_hash (the prior the reward model was initialised from)")
    expected = _expected_hash(expected_prior)
    if expected is not None and expected != prior_hash:
        raise CheckpointError(
            f"reward model '{directory}' was trained from another prior (weights {prior_hash}, "
            f"this prior is {expected}): retrain it with `rlcomposer reward train`")
    ensemble = RewardEnsemble(prior_config, config, prior_hash, files.metrics)
    try:
        ensemble.load_state_dict(files.state_dict)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{directory}: weights do not match its config ({first})") from None
    for parameter in ensemble.parameters():
        parameter.requires_grad_(False)
    ensemble.eval()
    return ensemble


__all__ = [
    "KIND", "PairLabel", "RatingData", "RewardEnsemble", "RewardModelConfig", "RewardModelError",
    "StarLabel", "evaluate_pairs", "load_reward_model", "load_training_data", "prior_fingerprint",
    "save_reward_model", "train_reward_model",
]
