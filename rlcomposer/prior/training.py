"""Maximum-likelihood training of the melody prior on the folk corpus.

Trains on the training split in crops of whole bars, keeps the weights with the
best validation NLL (early stopping), and reports the test split beside a
smoothed n-gram baseline fitted on the same training split.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from rlcomposer.checkpoints import check_finite_loss, save_model_dir
from rlcomposer.config import config_to_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import MODES
from rlcomposer.music.melody import NUM_SPECIAL_TOKENS, STEPS_PER_BAR, VOCAB_SIZE
from rlcomposer.music.metre import METRE_NAMES
from rlcomposer.prior.model import (
    ConditionBatch,
    MelodyCondition,
    MelodyPrior,
    PriorConfig,
    final_pitch_class,
)
from rlcomposer.prior.ngram import best_ngram
from rlcomposer.validation import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    THREADS,
    above,
    between,
    check_config,
)


@dataclass(frozen=True)
class PriorTrainingConfig:
    """Everything that decides a trained prior (stored in its config.json)."""

    seed: int = 0
    """Seeds weight initialisation and batch order."""
    embedding_dim: int = 96
    """Prior: width of the token and position embeddings."""
    hidden_size: int = 256
    """Prior: GRU units per layer."""
    num_layers: int = 1
    """Prior: GRU layers."""
    dropout: float = 0.2
    """Prior: dropout while training."""
    crop_bars: int = 16
    """Training crops are this many 16-step bars (256 steps) long, starting on a bar line
    of the tune's metre."""
    conditioned: bool = True
    """Condition the prior on metre, mode and length (every metre and mode rlcomposer knows);
    False trains the earlier 4/4-only format."""
    batch_size: int = 32
    """Crops per gradient step."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (cosine decay to a tenth over the epochs)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_epochs: int = 20
    """Upper bound on passes over the training split."""
    patience: int = 3
    """Stop after this many epochs without a better validation NLL."""
    max_minutes: float = 30.0
    """Wall-clock budget; training stops after the epoch that crosses it."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    threads: int = 2
    """torch CPU threads."""
    eval_batch_size: int = 64
    """Whole tunes per batch when measuring validation and test NLL."""
    finals: bool = True
    """Tell a conditioned prior each tune's final (its last note's pitch class), so that sampling
    can draw finals as the corpus's tunes have them (see :mod:`rlcomposer.prior.model`)."""
    final_dropout: float = 0.25
    """Share of training crops whose final is hidden ("unknown"), as in scoring and tuning."""

    def __post_init__(self) -> None:
        check_config(self, {
            "seed": SEED, "embedding_dim": between(1, 4096, whole=True), "hidden_size": between(1, 4096, whole=True),
            "num_layers": between(1, 16, whole=True), "dropout": FRACTION, "crop_bars": between(1, 1024, whole=True),
            "batch_size": between(1, 65_536, whole=True), "learning_rate": above(0, 1), "weight_decay": NON_NEGATIVE,
            "max_epochs": between(1, 100_000, whole=True), "patience": AT_LEAST_ONE, "max_minutes": POSITIVE,
            "grad_clip": POSITIVE, "threads": THREADS, "eval_batch_size": between(1, 65_536, whole=True),
            "final_dropout": FRACTION})

    def prior_config(self, finals: Sequence[Sequence[float]] = ()) -> PriorConfig:
        """The network's shape; ``finals`` is the final table (:func:`final_table`) when
        :attr:`finals` is on."""
        return PriorConfig(
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            metres=METRE_NAMES if self.conditioned else (),
            modes=MODES if self.conditioned else (),
            pickups=self.conditioned,
            finals=tuple(tuple(row) for row in finals) if self.conditioned and self.finals else (),
        )


def final_table(sequences: Sequence[np.ndarray], conditions: Sequence[MelodyCondition]) -> list[list[float]]:
    """Per mode of :data:`~rlcomposer.music.keys.MODES`, the share of ``sequences`` whose last
    note is each pitch class above the tonic (a mode without tunes ends on its tonic)."""
    counts = np.zeros((len(MODES), 12))
    for sequence, condition in zip(sequences, conditions, strict=True):
        final = final_pitch_class(np.asarray(sequence))
        if final is not None:
            counts[MODES.index(condition.mode), final] += 1
    counts[counts.sum(axis=1) == 0, 0] = 1.0
    return (counts / counts.sum(axis=1, keepdims=True)).round(6).tolist()


@dataclass
class HeldOutScore:
    """Teacher-forced scores of a model on whole tunes."""

    nll_per_step: float
    accuracy: float
    num_steps: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_per_step)


def _condition_ids(model: MelodyPrior, conditions: Sequence[MelodyCondition], rows: Sequence[int],
                   lengths: Sequence[int]) -> ConditionBatch | None:
    """The per-row condition tensors of a batch (None for an unconditioned prior)."""
    return model.rows_condition_batch(
        [conditions[row].with_length(length) for row, length in zip(rows, lengths, strict=True)])


def _crop_batches(
    sequences: Sequence[np.ndarray], crop_steps: int, batch_size: int, rng: np.random.Generator,
    bar_steps: Sequence[int] | None = None, pickups: Sequence[int] | None = None,
):
    """Yield (previous_tokens, targets, start_steps, mask, rows) batches of bar-aligned crops.

    Each tune is cut into crops of ``crop_steps`` at a random bar offset: the first
    crop starts at the tune's start (its pick-up, if it has one), the others on bar
    lines of the tune's own metre (``bar_steps[i]`` steps a bar, default 16, after
    ``pickups[i]`` steps of pick-up, default 0); a crop that starts mid-tune gets
    the real previous token as its first input. ``rows`` are the tunes' indices
    (for their conditions).
    """
    bos = VOCAB_SIZE
    crops: list[tuple[int, int]] = []
    for index, sequence in enumerate(sequences):
        bar = bar_steps[index] if bar_steps is not None else STEPS_PER_BAR
        pickup = pickups[index] if pickups is not None else 0
        crop = max(bar, crop_steps // bar * bar)
        offset_bars = int(rng.integers(0, crop // bar))
        starts = [0] + list(range(pickup + (offset_bars * bar or crop), len(sequence), crop))
        crops.extend((index, start) for start in starts if start < len(sequence))
    order = rng.permutation(len(crops))
    for first in range(0, len(order), batch_size):
        chosen = [crops[i] for i in order[first:first + batch_size]]
        previous = np.full((len(chosen), crop_steps), bos, dtype=np.int64)
        targets = np.zeros((len(chosen), crop_steps), dtype=np.int64)
        mask = np.zeros((len(chosen), crop_steps), dtype=bool)
        starts = np.zeros(len(chosen), dtype=np.int64)
        for row, (index, start) in enumerate(chosen):
            sequence = sequences[index]
            piece = sequence[start:start + crop_steps]
            targets[row, :len(piece)] = piece
            mask[row, :len(piece)] = True
            previous[row, 0] = sequence[start - 1] if start > 0 else bos
            previous[row, 1:len(piece)] = piece[:-1]
            starts[row] = start
        yield (torch.from_numpy(previous), torch.from_numpy(targets), torch.from_numpy(starts),
               torch.from_numpy(mask), [index for index, _ in chosen])


@torch.inference_mode()
def score_prior(model: MelodyPrior, sequences: Sequence[np.ndarray], batch_size: int = 64,
                conditions: Sequence[MelodyCondition] | None = None,
                per_tune: list[float] | None = None, skip: Sequence[int] | None = None) -> HeldOutScore:
    """Teacher-forced NLL per step and next-token accuracy over whole tunes.

    ``conditions`` (one per tune, default 4/4 major) tell a conditioned prior each
    tune's metre, mode and pick-up; ``per_tune``, if given, receives each tune's summed NLL
    (in the order of ``sequences``), for intervals over tunes. ``skip[i]`` leading steps
    of tune ``i`` are context only, not scored (the padding of the earlier encoding).
    """
    conditions = conditions or [MelodyCondition()] * len(sequences)
    if per_tune is not None:
        per_tune[:] = [0.0] * len(sequences)
    if not any(len(s) for s in sequences):
        raise RLComposerError("no tunes to score the prior on (an empty split): build the corpus with "
                              "more tunes (fewer --max-tunes)")
    was_training = model.training
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    total_nll, total_correct, total_steps = 0.0, 0, 0
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        chosen = [sequences[i] for i in rows]
        length = max(len(s) for s in chosen)
        tokens = torch.zeros(len(chosen), length, dtype=torch.long)
        mask = torch.zeros(len(chosen), length, dtype=torch.bool)
        for row, sequence in enumerate(chosen):
            tokens[row, :len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
            mask[row, (skip[rows[row]] if skip is not None else 0):len(sequence)] = True
        batch = _condition_ids(model, conditions, rows, [len(s) for s in chosen])
        logits = model.sequence_logits(tokens, batch)
        nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
        if per_tune is not None:
            for row, index in enumerate(rows):
                per_tune[index] = float(nll[row][mask[row]].sum())
        total_nll += float(nll[mask].sum())
        total_correct += int((logits.argmax(-1) == tokens)[mask].sum())
        total_steps += int(mask.sum())
    model.train(was_training)
    return HeldOutScore(total_nll / total_steps, total_correct / total_steps, total_steps)


def score_ngram_baseline(
    train: Sequence[np.ndarray], validation: Sequence[np.ndarray], test: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Best smoothed n-gram (order 1-5, chosen on validation), scored on test."""
    model, scores = best_ngram(train, validation, VOCAB_SIZE)
    log_probs = model.log_probs(test)
    nll = float(-log_probs.mean())
    return {
        "order": model.order,
        "discount": model.discount,
        "validation_nll_by_order": {
            str(order): min(v for (o, _), v in scores.items() if o == order)
            for order in sorted({o for o, _ in scores})
        },
        "test_nll_per_step": nll,
        "test_perplexity": math.exp(nll),
    }


def bootstrap_interval(nll_sums: np.ndarray, steps: np.ndarray, rng: np.random.Generator,
                       resamples: int = 2000) -> tuple[float, float]:
    """95% interval of the NLL per step, resampling whole tunes (percentile bootstrap)."""
    picks = rng.integers(0, len(nll_sums), size=(resamples, len(nll_sums)))
    ratios = nll_sums[picks].sum(axis=1) / steps[picks].sum(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def family_report(
    prior_nll_per_tune: Sequence[float],
    test: Sequence[np.ndarray],
    test_conditions: Sequence[MelodyCondition],
    train: Sequence[np.ndarray],
    validation: Sequence[np.ndarray],
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """Per metre family (duple, triple, compound): test tunes, the prior's NLL per step with a
    95% interval over tunes, the n-gram baseline's (fitted on the same train split) with its
    interval, and the prior's perplexity reduction against it; and both NLLs per note (the
    tunes' whole NLL over their notes: comparable across encodings, where per-step figures are
    not, as padded rests are cheap steps)."""
    from rlcomposer.music.metre import FAMILIES

    model, _ = best_ngram(train, validation, VOCAB_SIZE)
    bounds = np.cumsum([0] + [len(s) for s in test])
    log_probs = model.log_probs(test)
    ngram_per_tune = np.array([-float(log_probs[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    prior_per_tune = np.asarray(prior_nll_per_tune, dtype=np.float64)
    steps = np.array([len(s) for s in test], dtype=np.float64)
    notes = np.array([int(np.sum(np.asarray(s) >= NUM_SPECIAL_TOKENS)) for s in test], dtype=np.float64)
    report: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        rows = np.array([i for i, c in enumerate(test_conditions) if c.metre.family == family])
        if rows.size == 0:
            continue
        prior_nll = float(prior_per_tune[rows].sum() / steps[rows].sum())
        ngram_nll = float(ngram_per_tune[rows].sum() / steps[rows].sum())
        report[family] = {
            "tunes": int(rows.size),
            "steps": int(steps[rows].sum()),
            "nll_per_step": prior_nll,
            "nll_95": bootstrap_interval(prior_per_tune[rows], steps[rows], rng),
            "ngram_nll_per_step": ngram_nll,
            "ngram_nll_95": bootstrap_interval(ngram_per_tune[rows], steps[rows], rng),
            "perplexity_reduction_vs_ngram": 1 - math.exp(prior_nll - ngram_nll),
            "notes": int(notes[rows].sum()),
            "nll_per_note": float(prior_per_tune[rows].sum() / notes[rows].sum()),
            "ngram_nll_per_note": float(ngram_per_tune[rows].sum() / notes[rows].sum()),
        }
    return report


def train_prior(
    config: PriorTrainingConfig,
    train: Sequence[np.ndarray],
    validation: Sequence[np.ndarray],
    test: Sequence[np.ndarray] | None = None,
    out_dir: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    conditions: dict[str, Sequence[MelodyCondition]] | None = None,
) -> tuple[MelodyPrior, dict[str, Any]]:
    """Train, choose on validation, report on test; save to ``out_dir`` if given.

    ``conditions`` maps ``"train"``, ``"validation"`` and ``"test"`` to each tune's
    :class:`MelodyCondition` (metre and mode; default 4/4 major); the test report
    then also gives each metre family's NLL with a 95% interval beside the
    n-gram baseline's (:func:`family_report`).
    """
    conditions = conditions or {}
    train_conditions = list(conditions.get("train") or [MelodyCondition()] * len(train))
    validation_conditions = list(conditions.get("validation") or [MelodyCondition()] * len(validation))
    # ---- derived values --------------------------------------------------
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    crop_steps = config.crop_bars * STEPS_PER_BAR
    model = MelodyPrior(config.prior_config(final_table(train, train_conditions)))
    train_finals = [final_pitch_class(np.asarray(sequence)) for sequence in train]
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(
        sum(math.ceil(len(s) / crop_steps) + 1 for s in train) / config.batch_size
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=steps_per_epoch * config.max_epochs + 1,
        pct_start=0.05, anneal_strategy="cos", final_div_factor=10.0, div_factor=10.0,
    )
    writer = None
    if tensorboard_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(tensorboard_dir))
        writer.add_text("config", "```\n" + json.dumps(config_to_dict(config), indent=2) + "\n```")
    # ---- training loop ---------------------------------------------------
    best_state: dict[str, torch.Tensor] | None = None
    best_validation = math.inf
    history: list[dict[str, float]] = []
    stale_epochs = 0
    started = time.monotonic()
    global_step = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        batches = _crop_batches(train, crop_steps, config.batch_size, rng,
                                [c.metre.steps_per_bar for c in train_conditions],
                                [c.pickup_steps for c in train_conditions])
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}", leave=False)
        loss_sum, loss_steps = 0.0, 0
        for previous, targets, starts, mask, rows in batches:
            told = [train_conditions[r].with_final(train_finals[r]) if model.config.finals
                    and rng.random() >= config.final_dropout else train_conditions[r] for r in rows]
            condition = _condition_ids(model, told, range(len(rows)), [len(train[r]) for r in rows])
            logits, _ = model(previous, starts, condition=condition)
            nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            loss = nll[mask].mean()
            check_finite_loss(loss, "prior training", f"step {global_step + 1} (epoch {epoch})",
                              f"learning_rate={config.learning_rate:g} (now {scheduler.get_last_lr()[0]:g}), "
                              f"weight_decay={config.weight_decay:g}, grad_clip={config.grad_clip:g}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if global_step < scheduler.total_steps - 1:
                scheduler.step()
            global_step += 1
            loss_sum += float(nll.detach()[mask].sum())
            loss_steps += int(mask.sum())
            if writer is not None and global_step % 50 == 0:
                writer.add_scalar("train/nll_per_step", float(loss.detach()), global_step)
                writer.add_scalar("train/learning_rate", scheduler.get_last_lr()[0], global_step)
        validation_score = score_prior(model, validation, config.eval_batch_size,
                                       validation_conditions)
        minutes = (time.monotonic() - started) / 60
        record = {
            "epoch": epoch,
            "train_nll_per_step": loss_sum / max(loss_steps, 1),
            "validation_nll_per_step": validation_score.nll_per_step,
            "validation_accuracy": validation_score.accuracy,
            "minutes": minutes,
        }
        history.append(record)
        if writer is not None:
            writer.add_scalar("validation/nll_per_step", validation_score.nll_per_step, epoch)
            writer.add_scalar("validation/accuracy", validation_score.accuracy, epoch)
        improved = validation_score.nll_per_step < best_validation - 1e-4
        log(
            f"epoch {epoch}: train nll {record['train_nll_per_step']:.4f}, validation nll "
            f"{validation_score.nll_per_step:.4f}, accuracy {validation_score.accuracy:.3f}"
            f"{' (best)' if improved else ''}, {minutes:.1f} min"
        )
        if improved:
            best_validation = validation_score.nll_per_step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            stale_epochs = 0
        else:
            stale_epochs += 1
        if stale_epochs >= config.patience or minutes >= config.max_minutes:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    # ---- report ----------------------------------------------------------
    metrics: dict[str, Any] = {
        "best_validation_nll_per_step": best_validation,
        "epochs_run": len(history),
        "train_minutes": (time.monotonic() - started) / 60,
        "num_parameters": model.num_parameters(),
        "train_tunes": len(train),
        "train_steps": int(sum(len(s) for s in train)),
        "history": history,
    }
    if test is not None and len(test):
        test_conditions = list(conditions.get("test") or [MelodyCondition()] * len(test))
        per_tune: list[float] = []
        test_score = score_prior(model, test, config.eval_batch_size, test_conditions, per_tune)
        metrics["test"] = {
            "nll_per_step": test_score.nll_per_step,
            "accuracy": test_score.accuracy,
            "perplexity": test_score.perplexity,
            "num_steps": test_score.num_steps,
            "num_tunes": len(test),
        }
        metrics["ngram_baseline"] = score_ngram_baseline(train, validation, test)
        metrics["perplexity_reduction_vs_ngram"] = 1 - (
            test_score.perplexity / metrics["ngram_baseline"]["test_perplexity"]
        )
        metrics["test_by_family"] = family_report(
            per_tune, test, test_conditions, train, validation, np.random.default_rng(config.seed))
        if writer is not None:
            writer.add_scalar("test/nll_per_step", test_score.nll_per_step, 0)
            writer.add_scalar("test/accuracy", test_score.accuracy, 0)
    if writer is not None:
        writer.close()
    if out_dir is not None:
        save_model_dir(out_dir, "prior", model.config, model.state_dict(), config, metrics)
    return model, metrics
