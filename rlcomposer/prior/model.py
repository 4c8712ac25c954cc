"""The melody prior: a causal GRU over melody tokens with the metric position as input.

Reads top to bottom: the config, the model, sampling, saving and loading.

At step ``t`` the model sees the previous token (``BOS`` at step 0) and the
metric position of step ``t`` (sixteenth within the bar, and bar within a
4-bar phrase), and predicts the distribution of token ``t``. Sampling carries
the recurrent state step by step, so a melody of T steps costs T cell updates.

A *conditioned* prior (``PriorConfig.metres`` not empty, as the shipped one) is
also told the melody's :class:`MelodyCondition`: its metre (the sixteenth
within the bar is learnt per metre, so a 6/8 bar has 12 positions and 3/4's
12 are others), its mode (its tonic is always C, see
:mod:`rlcomposer.music.keys`) and its length: the bars left to the end (the
last bar, the one before, ...) and whether a bar lies in the first or the
answering 4-bar phrase, so that an 8-bar melody answers and ends with a
cadence. One model serves every metre and mode. A prior with empty ``metres``
(the earlier format) knows 4/4 only.

A *pick-up* (``MelodyCondition.pickup_steps``, an anacrusis of that many steps
before the first downbeat) moves every metric input: step ``t`` sits at
``t - pickup_steps`` from the first downbeat, so the pick-up is the end of bar
-1 (the last bar of the phrase before) and the melody's first step knows where
in the bar it falls. A melody without one starts on the downbeat. Priors trained
before pick-ups were represented this way (``PriorConfig.pickups`` false) learnt
tunes padded with silence to a whole first bar; they take pick-up 0 only.

A prior with a final table (``PriorConfig.finals``) is also told the melody's
*final*: the pitch class of its last note above the tonic (0: it ends on the
tonic), or "unknown". It learnt with the tunes' real finals (hidden on a share
of training crops), and :meth:`MelodyPrior.sample` draws each melody's final
from the training tunes' own shares in its mode and keeps the first of up to
:data:`FINAL_ATTEMPTS` melodies that ends on it, so that melodies end as the
corpus's do without a forced last note. Everything else (scoring, the RL
environment, a tuned policy) tells it "unknown".

A prior is saved as a model directory (see :mod:`rlcomposer.checkpoints`):
``model.pt`` holds tensors only and loads with ``weights_only=True``;
``config.json`` holds the :class:`PriorConfig` that made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlcomposer.checkpoints import CONFIG_FILE, CheckpointError, read_model_dir
from rlcomposer.config import ConfigError, config_from_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import MODES, parse_mode
from rlcomposer.music.melody import MIN_PITCH, NUM_SPECIAL_TOKENS, STEPS_PER_BAR, VOCAB_SIZE
from rlcomposer.music.metre import (
    DEFAULT_METRE,
    MAX_STEPS_PER_BAR,
    METRE_NAMES,
    Metre,
    MetreError,
    check_pickup_steps,
    parse_metre,
)
from rlcomposer.validation import FRACTION, between, check_config


class ConditionError(RLComposerError):
    """A metre or mode the prior (or a policy tuned from it) was not trained for."""


@dataclass(frozen=True)
class MelodyCondition:
    """What a conditioned prior is told about the melody to predict."""

    metre: Metre = DEFAULT_METRE
    """The time signature."""
    mode: str = "major"
    """The mode (the tonic is C)."""
    num_steps: int | None = None
    """The melody's length in steps, pick-up included (None: unknown, e.g. an open-ended rollout)."""
    pickup_steps: int = 0
    """Steps of the pick-up before the first downbeat (0: the melody starts on the downbeat)."""
    final: int | None = None
    """Pitch class of the last note above the tonic (0: the tonic); None: drawn from the prior's
    final table when sampling, "unknown" elsewhere. Ignored by a prior without finals."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metre", parse_metre(self.metre))
        object.__setattr__(self, "mode", parse_mode(self.mode))
        try:
            pickup = check_pickup_steps(self.pickup_steps, self.metre, self.num_steps)
        except MetreError as error:
            raise ConditionError(str(error)) from None
        object.__setattr__(self, "pickup_steps", pickup)
        if self.final is not None and (isinstance(self.final, bool) or self.final not in range(12)):
            raise ConditionError(f"a final of {self.final!r}: expected a pitch class 0..11 above the tonic")

    def with_length(self, num_steps: int | None) -> MelodyCondition:
        return MelodyCondition(self.metre, self.mode, num_steps, self.pickup_steps, self.final)

    def with_final(self, final: int | None) -> MelodyCondition:
        return MelodyCondition(self.metre, self.mode, self.num_steps, self.pickup_steps, final)

    @classmethod
    def of(cls, melody) -> MelodyCondition:
        """The condition of an existing :class:`~rlcomposer.music.melody.Melody`."""
        return cls(melody.metre, melody.key.mode, melody.num_steps, melody.pickup_steps)


DEFAULT_CONDITION = MelodyCondition()


@dataclass(frozen=True)
class ConditionBatch:
    """One condition per row of a batch: ``[B]`` integer tensors (``num_steps`` 0 = unknown)."""

    metre_ids: torch.Tensor
    mode_ids: torch.Tensor
    num_steps: torch.Tensor
    pickup_steps: torch.Tensor | None = None
    """``[B]`` pick-up lengths (None: no pick-ups)."""
    finals: torch.Tensor | None = None
    """``[B]`` finals, :data:`UNKNOWN_FINAL` where not told (None: all unknown)."""


UNKNOWN_FINAL = 12
"""The final input's "not told" value (finals are pitch classes 0..11)."""
FINAL_ATTEMPTS = 8
"""Draws a plain prior's melody may take to end on the final it was told (see :meth:`MelodyPrior.sample`)."""


def final_pitch_class(tokens: np.ndarray) -> int | None:
    """The pitch class above C (the tonic of a melody the prior writes) of its last note (None: no notes)."""
    pitches = tokens[tokens >= NUM_SPECIAL_TOKENS]
    return None if pitches.size == 0 else int(pitches[-1] - NUM_SPECIAL_TOKENS + MIN_PITCH) % 12


@dataclass(frozen=True)
class PriorConfig:
    """Shape of the prior network. Stored with every checkpoint."""

    vocab_size: int = VOCAB_SIZE
    """Output tokens: REST, HOLD and the pitches (the melody encoding's vocabulary)."""
    steps_per_bar: int = STEPS_PER_BAR
    """Metric grid: sixteenth-note steps in one bar."""
    bars_per_phrase: int = 4
    """The bar-within-phrase input counts bars modulo this."""
    embedding_dim: int = 96
    """Width of the token and position embeddings (summed)."""
    hidden_size: int = 256
    """GRU units per layer."""
    num_layers: int = 1
    """GRU layers (one keeps PPO fast: about 5k env-steps/s on 2 cores)."""
    dropout: float = 0.2
    """Dropout on the embeddings and the GRU output while training."""
    metres: tuple[str, ...] = ()
    """Time signatures the prior is conditioned on (empty: the unconditioned 4/4 format)."""
    modes: tuple[str, ...] = ()
    """Modes the prior is conditioned on (empty with ``metres``)."""
    end_buckets: int = 4
    """Bars-to-the-end input: the last bar, the one before, ..., this many or more."""
    pickups: bool = False
    """Trained on tunes whose pick-ups are partial bars (true since pick-ups were represented);
    false: the earlier format, tunes padded with silence to a whole first bar (pick-up 0 only)."""
    finals: tuple[tuple[float, ...], ...] = ()
    """Per mode (in ``modes`` order), the share of training tunes whose last note is each pitch
    class above the tonic: the finals sampling draws from (empty: no final input, the earlier format)."""

    def __post_init__(self) -> None:
        check_config(self, {"vocab_size": between(1, 4096, whole=True), "steps_per_bar": between(1, 256, whole=True),
                            "bars_per_phrase": between(1, 256, whole=True), "embedding_dim": between(1, 4096, whole=True),
                            "hidden_size": between(1, 4096, whole=True), "num_layers": between(1, 16, whole=True),
                            "dropout": FRACTION}, "prior ")
        object.__setattr__(self, "finals", tuple(tuple(float(w) for w in row) for row in self.finals))
        if self.finals and (len(self.finals) != len(self.modes) or any(len(row) != 12 or min(row) < 0
                                                                       or sum(row) <= 0 for row in self.finals)):
            raise ConfigError("prior config key 'finals': expected one row of 12 non-negative shares per mode")

    @property
    def bos_token(self) -> int:
        """Input-only token that stands before step 0."""
        return self.vocab_size

    @property
    def conditioned(self) -> bool:
        return bool(self.metres)


class MelodyPrior(nn.Module):
    """Causal GRU language model over melody tokens."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size + 1, config.embedding_dim)
        if config.conditioned:
            unknown = [m for m in config.metres if m not in METRE_NAMES]
            if unknown or not config.modes or any(m not in MODES for m in config.modes):
                raise ConditionError(f"a prior config names unknown metres or modes: "
                                     f"{list(config.metres)}, {list(config.modes)}")
            # one row per (metre, sixteenth in its bar)
            self.beat_embedding = nn.Embedding(len(config.metres) * MAX_STEPS_PER_BAR,
                                               config.embedding_dim)
            self.mode_embedding = nn.Embedding(len(config.modes), config.embedding_dim)
            self.end_embedding = nn.Embedding(config.end_buckets + 1, config.embedding_dim)
            self.phrase_embedding = nn.Embedding(2, config.embedding_dim)
            if config.finals:
                self.final_embedding = nn.Embedding(UNKNOWN_FINAL + 1, config.embedding_dim)
            self.register_buffer("bar_steps", torch.tensor(
                [parse_metre(m).steps_per_bar for m in config.metres]), persistent=False)
        else:
            self.beat_embedding = nn.Embedding(config.steps_per_bar, config.embedding_dim)
        self.bar_embedding = nn.Embedding(config.bars_per_phrase, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.tuned_condition: MelodyCondition | None = None
        """A tuned policy's metre and mode (it samples those only); None for a prior."""
        self.tuned_from: str | None = None
        """A loaded policy's prior, as its tune config names it (``prior``: the shipped one)."""

    # ----------------------------------------------------------------- inputs
    def check_condition(self, condition: MelodyCondition) -> None:
        """Raise :class:`ConditionError` if the prior was not trained for ``condition``."""
        if not self.config.conditioned:
            if condition.metre != DEFAULT_METRE or condition.mode not in ("major", "minor"):
                raise ConditionError(
                    f"this prior knows only 4/4 in major or minor (an unconditioned prior), "
                    f"not {condition.metre.name} {condition.mode}")
            if condition.pickup_steps:
                raise ConditionError("this prior (an unconditioned one) takes no pick-up")
            return
        if condition.metre.name not in self.config.metres:
            raise ConditionError(f"this prior was trained for the metres "
                                 f"{', '.join(self.config.metres)}, not {condition.metre.name}")
        if condition.mode not in self.config.modes:
            raise ConditionError(f"this prior was trained for the modes "
                                 f"{', '.join(self.config.modes)}, not {condition.mode}")
        if condition.pickup_steps and not self.config.pickups:
            raise ConditionError("this prior was trained before pick-ups were represented (its tunes "
                                 "open with a bar padded with silence): it takes no --pickup; use the "
                                 "shipped prior or retrain with `make prior`")

    def condition_batch(self, condition: MelodyCondition | ConditionBatch | None, batch: int,
                        length: int | None = None) -> ConditionBatch | None:
        """Tensors of a condition for ``batch`` rows (None for an unconditioned prior).

        ``length`` fills in an unknown ``num_steps`` (whole sequences know theirs).
        """
        if not self.config.conditioned:
            if isinstance(condition, MelodyCondition):
                self.check_condition(condition)
            return None
        if isinstance(condition, ConditionBatch):
            return condition
        condition = condition or DEFAULT_CONDITION
        self.check_condition(condition)
        num_steps = condition.num_steps if condition.num_steps is not None else (length or 0)
        device = self.token_embedding.weight.device
        return ConditionBatch(
            torch.full((batch,), self.config.metres.index(condition.metre.name), device=device),
            torch.full((batch,), self.config.modes.index(condition.mode), device=device),
            torch.full((batch,), int(num_steps), device=device),
            torch.full((batch,), int(condition.pickup_steps), device=device),
            torch.full((batch,), UNKNOWN_FINAL if condition.final is None else condition.final, device=device),
        )

    def rows_condition_batch(self, conditions: Sequence[MelodyCondition]) -> ConditionBatch | None:
        """One condition per row (None for an unconditioned prior, which checks them)."""
        for condition in conditions:
            self.check_condition(condition)
        if not self.config.conditioned:
            return None
        return ConditionBatch(
            torch.tensor([self.config.metres.index(c.metre.name) for c in conditions]),
            torch.tensor([self.config.modes.index(c.mode) for c in conditions]),
            torch.tensor([c.num_steps or 0 for c in conditions]),
            torch.tensor([c.pickup_steps for c in conditions]),
            torch.tensor([UNKNOWN_FINAL if c.final is None else c.final for c in conditions]),
        )

    def embed(self, previous_tokens: torch.Tensor, steps: torch.Tensor,
              condition: MelodyCondition | ConditionBatch | None = None) -> torch.Tensor:
        """Embedding of (previous token, metric position of the step to predict, condition)."""
        if not self.config.conditioned:
            self.condition_batch(condition, 0)
            beat = steps % self.config.steps_per_bar
            bar = (steps // self.config.steps_per_bar) % self.config.bars_per_phrase
            return self.dropout(
                self.token_embedding(previous_tokens) + self.beat_embedding(beat)
                + self.bar_embedding(bar)
            )
        batch = self.condition_batch(condition, previous_tokens.shape[0])
        assert batch is not None
        metre = batch.metre_ids.view(-1, 1)
        bar_steps = self.bar_steps[metre]
        pickup = batch.pickup_steps.view(-1, 1) if batch.pickup_steps is not None else 0
        steps = steps - pickup  # from the first downbeat: a pick-up is the end of bar -1
        bar = torch.div(steps, bar_steps, rounding_mode="floor")
        total_bars = torch.div(batch.num_steps.view(-1, 1) - pickup + bar_steps - 1, bar_steps,
                               rounding_mode="floor")
        left = (total_bars - 1 - bar).clamp(0, self.config.end_buckets - 1)
        left = torch.where(batch.num_steps.view(-1, 1) > 0, left, self.config.end_buckets)
        embedded = (
            self.token_embedding(previous_tokens)
            + self.beat_embedding(metre * MAX_STEPS_PER_BAR + torch.remainder(steps, bar_steps))
            + self.bar_embedding(bar % self.config.bars_per_phrase)
            + self.phrase_embedding((bar // self.config.bars_per_phrase) % 2)
            + self.end_embedding(left)
            + self.mode_embedding(batch.mode_ids).unsqueeze(1)
        )
        if self.config.finals:
            finals = batch.finals if batch.finals is not None else torch.full_like(batch.mode_ids, UNKNOWN_FINAL)
            embedded = embedded + self.final_embedding(finals).unsqueeze(1)
        return self.dropout(embedded)

    def shift_right(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inputs for predicting ``tokens``: BOS followed by all but the last token."""
        bos = torch.full_like(tokens[:, :1], self.config.bos_token)
        return torch.cat([bos, tokens[:, :-1]], dim=1)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        previous_tokens: torch.Tensor,
        start_step: int | torch.Tensor = 0,
        hidden: torch.Tensor | None = None,
        condition: MelodyCondition | ConditionBatch | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, T, vocab]`` for steps ``start_step .. start_step+T-1``.

        ``previous_tokens[:, i]`` is the token before step ``start_step + i``
        (BOS for step 0). ``start_step`` is an int or a ``[B]`` tensor.
        ``condition`` (default 4/4 major, length unknown) is ignored by an
        unconditioned prior. Returns the logits and the final recurrent state.
        """
        batch, length = previous_tokens.shape
        offsets = torch.arange(length, device=previous_tokens.device)
        if isinstance(start_step, torch.Tensor):
            steps = start_step.view(-1, 1) + offsets.view(1, -1)
        else:
            steps = (start_step + offsets).view(1, -1).expand(batch, length)
        output, hidden = self.gru(self.embed(previous_tokens, steps, condition), hidden)
        return self.head(self.dropout(output)), hidden

    def sequence_logits(self, tokens: torch.Tensor,
                        condition: MelodyCondition | ConditionBatch | None = None) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` predicting each token of whole melodies from step 0
        (a condition of unknown length takes the melodies' ``T``)."""
        batch = self.condition_batch(condition, tokens.shape[0], tokens.shape[1])
        logits, _ = self(self.shift_right(tokens), condition=batch if batch is not None else condition)
        return logits

    def log_likelihood(self, tokens: torch.Tensor,
                       condition: MelodyCondition | ConditionBatch | None = None) -> torch.Tensor:
        """Per-step log p(token_t | tokens_<t), shape ``[B, T]``."""
        log_probs = F.log_softmax(self.sequence_logits(tokens, condition), dim=-1)
        return log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    def step(
        self, previous_tokens: torch.Tensor, step: int | torch.Tensor, hidden: torch.Tensor | None,
        condition: MelodyCondition | ConditionBatch | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: logits ``[B, vocab]`` for step ``step`` and the new state."""
        logits, hidden = self(previous_tokens.view(-1, 1), step, hidden, condition)
        return logits[:, 0], hidden

    # --------------------------------------------------------------- sampling
    @torch.inference_mode()
    def sample(
        self,
        num_melodies: int,
        num_steps: int,
        generator: torch.Generator,
        temperature: float = 1.0,
        top_k: int | None = None,
        batch_size: int = 2048,
        condition: MelodyCondition | Sequence[MelodyCondition] | None = None,
        prefix: np.ndarray | None = None,
        allowed: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Sample token arrays ``[num_melodies, num_steps]``, carrying the GRU state.

        ``temperature`` scales the logits; ``top_k`` keeps the k likeliest tokens;
        ``condition`` (default 4/4 major), or one per melody (a batch may mix
        metres and modes), gets the length ``num_steps``. ``prefix`` (tokens) starts
        every melody as given, the network run through it; ``allowed`` (``[num_steps,
        vocab]`` booleans) limits the tokens each step may draw.
        """
        if isinstance(condition, MelodyCondition) or condition is None:
            conditions = None
            condition = (condition or DEFAULT_CONDITION).with_length(num_steps)
        else:
            conditions = [c.with_length(num_steps) for c in condition]
            if len(conditions) != num_melodies:
                raise ValueError(f"{len(conditions)} conditions for {num_melodies} melodies")
        if self.config.finals and self.tuned_condition is None:
            conditions = self.draw_finals(conditions or [condition] * num_melodies, generator)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be in 1..{self.config.vocab_size}, got {top_k}")
        was_training = self.training
        self.eval()
        chunks = []
        for start in range(0, num_melodies, batch_size):
            count = min(batch_size, num_melodies - start)
            rows = None if conditions is None else conditions[start:start + count]
            chunks.append(self._sample_rows(condition if rows is None else rows, count, num_steps, generator,
                                            temperature, top_k, prefix, allowed))
        tokens = np.concatenate(chunks, axis=0)
        if self.config.finals and self.tuned_condition is None:
            self._redraw_other_finals(tokens, conditions, generator, temperature, top_k, prefix, allowed)
        self.train(was_training)
        return tokens

    def _sample_rows(self, condition: MelodyCondition | Sequence[MelodyCondition], count: int, num_steps: int,
                     generator: torch.Generator, temperature: float, top_k: int | None,
                     prefix: np.ndarray | None = None, allowed: torch.Tensor | None = None) -> np.ndarray:
        """``count`` melodies of one condition, or of one condition per row, step by step
        (after ``prefix``, with the tokens ``allowed`` at each step: see :meth:`sample`)."""
        tokens = torch.empty(count, num_steps, dtype=torch.long)
        previous = torch.full((count,), self.config.bos_token, dtype=torch.long)
        hidden = None
        if isinstance(condition, MelodyCondition):
            batch = self.condition_batch(condition, count)
        else:
            batch = self.rows_condition_batch(condition)
        start = 0
        if prefix is not None and len(prefix):
            start = len(prefix)
            given = torch.as_tensor(np.asarray(prefix, dtype=np.int64)).unsqueeze(0).expand(count, start)
            _, hidden = self(self.shift_right(given), 0, None, batch)  # the network run through the prefix
            tokens[:, :start] = given
            previous = given[:, -1]
        for t in range(start, num_steps):
            logits, hidden = self.step(previous, t, hidden, batch)
            logits = logits / temperature
            if allowed is not None:
                logits = logits.masked_fill(~allowed[t], float("-inf"))
            if top_k is not None and top_k < self.config.vocab_size:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            previous = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            tokens[:, t] = previous
        return tokens.numpy()

    def _redraw_other_finals(self, tokens: np.ndarray, conditions: Sequence[MelodyCondition],
                             generator: torch.Generator, temperature: float, top_k: int | None,
                             prefix: np.ndarray | None = None, allowed: torch.Tensor | None = None) -> None:
        """Melodies that end elsewhere than on the final they were told are drawn again (at most
        :data:`FINAL_ATTEMPTS` draws in all; the last draw stays whatever it ends on): the model's
        own melodies, kept as the corpus's finals fall, never a forced last note."""
        for _ in range(FINAL_ATTEMPTS - 1):
            pending = [row for row in range(len(tokens))
                       if final_pitch_class(tokens[row]) not in (None, conditions[row].final)]
            if not pending:
                return
            again = self._sample_rows([conditions[row] for row in pending], len(pending), tokens.shape[1],
                                      generator, temperature, top_k, prefix, allowed)
            tokens[pending] = again

    def draw_finals(self, conditions: Sequence[MelodyCondition],
                    generator: torch.Generator) -> list[MelodyCondition]:
        """Each condition without a final gets one drawn from the training tunes' finals in its mode."""
        weights = torch.tensor(self.config.finals, dtype=torch.float64)
        drawn = []
        for condition in conditions:
            if condition.final is None and condition.mode in self.config.modes:
                row = weights[self.config.modes.index(condition.mode)]
                condition = condition.with_final(int(torch.multinomial(row, 1, generator=generator)))
            drawn.append(condition)
        return drawn

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


SHIPPED_PRIOR_DIR = Path(__file__).resolve().parents[1] / "data" / "prior"
"""The trained default prior that ships inside the package (``--model prior``)."""
ACTOR_PREFIX = "actor."
SHIPPED_PRIOR_NAME = "prior"


def prior_directory(spec: str | Path) -> Path:
    """The directory a prior spec names: ``prior`` is the shipped one, anything else a path."""
    return SHIPPED_PRIOR_DIR if str(spec) == SHIPPED_PRIOR_NAME else Path(spec)


def load_prior(directory: str | Path = SHIPPED_PRIOR_DIR):
    """Load a :class:`~rlcomposer.prior.model.MelodyPrior` from a model directory, in eval mode.

    ``directory`` may also be the name ``prior`` (the shipped prior). A tuned
    policy directory (kind ``policy``) loads too: its actor is a prior network
    with tuned weights, and it samples the same way.
    """
    directory = prior_directory(directory)
    files = read_model_dir(directory, expected_kinds=("prior", "policy"))
    if files.kind == "policy":
        files.state_dict = {k[len(ACTOR_PREFIX):]: v for k, v in files.state_dict.items()
                            if k.startswith(ACTOR_PREFIX)}
    try:
        config = config_from_dict(PriorConfig, files.config["model"], f"{directory}/{CONFIG_FILE}")
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    model = MelodyPrior(config)
    try:
        model.load_state_dict(files.state_dict)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{directory}: weights do not match its config ({first})") from None
    model.eval()
    if files.kind == "policy":
        model.tuned_from = str(files.config.get("training", {}).get("prior") or SHIPPED_PRIOR_NAME)
    env = files.config.get("env") if files.kind == "policy" else None
    if isinstance(env, dict):
        try:
            model.tuned_condition = MelodyCondition(env.get("metre", "4/4"), env.get("mode", "major"))
        except RLComposerError as error:
            raise CheckpointError(f"{directory}: {error}") from None
    return model
