"""The melody prior: a causal GRU over melody tokens with the metric position as input.

Reads top to bottom: the config, the model, sampling, saving and loading.

At step ``t`` the model sees the previous token (``BOS`` at step 0) and the
metric position of step ``t`` (sixteenth within the bar, and bar within a
4-bar phrase), and predicts the distribution of token ``t``. Sampling carries
the recurrent state step by step, so a melody of T steps costs T cell updates.

A prior is saved as a model directory (see :mod:`rlcomposer.checkpoints`):
``model.pt`` holds tensors only and loads with ``weights_only=True``;
``config.json`` holds the :class:`PriorConfig` that made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlcomposer.checkpoints import CONFIG_FILE, CheckpointError, read_model_dir
from rlcomposer.config import ConfigError, config_from_dict
from rlcomposer.music.melody import STEPS_PER_BAR, VOCAB_SIZE
from rlcomposer.validation import FRACTION, between, check_config


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

    def __post_init__(self) -> None:
        check_config(self, {"vocab_size": between(1, 4096, whole=True), "steps_per_bar": between(1, 256, whole=True),
                            "bars_per_phrase": between(1, 256, whole=True), "embedding_dim": between(1, 4096, whole=True),
                            "hidden_size": between(1, 4096, whole=True), "num_layers": between(1, 16, whole=True),
                            "dropout": FRACTION}, "prior ")

    @property
    def bos_token(self) -> int:
        """Input-only token that stands before step 0."""
        return self.vocab_size


class MelodyPrior(nn.Module):
    """Causal GRU language model over melody tokens."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size + 1, config.embedding_dim)
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

    # ----------------------------------------------------------------- inputs
    def embed(self, previous_tokens: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Embedding of (previous token, metric position of the step to predict)."""
        beat = steps % self.config.steps_per_bar
        bar = (steps // self.config.steps_per_bar) % self.config.bars_per_phrase
        return self.dropout(
            self.token_embedding(previous_tokens) + self.beat_embedding(beat) + self.bar_embedding(bar)
        )

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, T, vocab]`` for steps ``start_step .. start_step+T-1``.

        ``previous_tokens[:, i]`` is the token before step ``start_step + i``
        (BOS for step 0). ``start_step`` is an int or a ``[B]`` tensor.
        Returns the logits and the final recurrent state.
        """
        batch, length = previous_tokens.shape
        offsets = torch.arange(length, device=previous_tokens.device)
        if isinstance(start_step, torch.Tensor):
            steps = start_step.view(-1, 1) + offsets.view(1, -1)
        else:
            steps = (start_step + offsets).view(1, -1).expand(batch, length)
        output, hidden = self.gru(self.embed(previous_tokens, steps), hidden)
        return self.head(self.dropout(output)), hidden

    def sequence_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` predicting each token of whole melodies from step 0."""
        logits, _ = self(self.shift_right(tokens))
        return logits

    def log_likelihood(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-step log p(token_t | tokens_<t), shape ``[B, T]``."""
        log_probs = F.log_softmax(self.sequence_logits(tokens), dim=-1)
        return log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    def step(
        self, previous_tokens: torch.Tensor, step: int | torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: logits ``[B, vocab]`` for step ``step`` and the new state."""
        logits, hidden = self(previous_tokens.view(-1, 1), step, hidden)
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
    ) -> np.ndarray:
        """Sample token arrays ``[num_melodies, num_steps]``, carrying the GRU state.

        ``temperature`` scales the logits; ``top_k`` keeps the k likeliest tokens.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be in 1..{self.config.vocab_size}, got {top_k}")
        was_training = self.training
        self.eval()
        chunks = []
        for start in range(0, num_melodies, batch_size):
            count = min(batch_size, num_melodies - start)
            tokens = torch.empty(count, num_steps, dtype=torch.long)
            previous = torch.full((count,), self.config.bos_token, dtype=torch.long)
            hidden = None
            for t in range(num_steps):
                logits, hidden = self.step(previous, t, hidden)
                logits = logits / temperature
                if top_k is not None and top_k < self.config.vocab_size:
                    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                previous = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
                tokens[:, t] = previous
            chunks.append(tokens.numpy())
        self.train(was_training)
        return np.concatenate(chunks, axis=0)

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
    return model
