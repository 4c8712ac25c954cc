"""Model directories: the files a user may receive from someone else.

A model directory holds

* ``model.pt``: a ``dict[str, Tensor]`` state dict, loaded with
  ``torch.load(..., weights_only=True)`` so that it never unpickles code;
* ``config.json``: ``{"kind": ..., "format_version": 1, "model": {...},
  "training": {...}}``, the config that made the weights;
* ``metrics.json`` (optional): the figures measured when it was made.

Writes go to a temporary sibling directory first and are renamed into place,
so an interrupted save never leaves a half-written file.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlcomposer.config import config_to_dict
from rlcomposer.errors import RLComposerError

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
FORMAT_VERSION = 1


class CheckpointError(RLComposerError):
    """A model directory that is missing, incomplete, corrupt or of the wrong kind."""


class TrainingDiverged(RLComposerError):
    """Training whose loss or weights stopped being finite numbers: no model is written."""


def non_finite_tensor(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or ±inf, or None."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


def check_finite_loss(loss: float | torch.Tensor, what: str, where: str, settings: str) -> None:
    """Stop training the moment its loss is NaN or ±inf, saying where and with which settings.

    ``where`` is the step (``"step 12 (epoch 2)"``), ``settings`` the learning-rate
    settings (``"learning_rate=0.9"``).
    """
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise TrainingDiverged(f"{what}: the loss became {value} at {where} with {settings}; "
                               "no model written (lower the learning rate)")


@dataclass
class ModelFiles:
    """What a model directory holds, read but not yet turned into a module."""

    directory: Path
    kind: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, Any]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary sibling of ``path`` and rename it into place (never half-written)."""
    path = Path(path)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with open(handle, "w", encoding="utf-8") as file:
            file.write(text)
        Path(staging).replace(path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def save_model_dir(
    directory: str | Path,
    kind: str,
    model_config: Any,
    state_dict: dict[str, torch.Tensor],
    training_config: Any | None = None,
    metrics: dict[str, Any] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory (its files replace those of an existing one)."""
    directory = Path(directory)
    bad = non_finite_tensor(state_dict)
    if bad is not None:
        raise TrainingDiverged(f"refusing to write model '{directory}': tensor '{bad}' holds NaN or "
                               "infinite values (training diverged; lower the learning rate)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "model": config_to_dict(model_config),
        "training": config_to_dict(training_config) if training_config is not None else {},
        **(extra_config or {}),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        torch.save(tensors, staging / MODEL_FILE)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if metrics is not None:
            (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        if directory.exists():  # a run folder with other files: replace just ours
            for path in staging.iterdir():
                path.replace(directory / path.name)
            staging.rmdir()
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_model_dir(directory: str | Path, expected_kinds: tuple[str, ...] | None = None) -> ModelFiles:
    """Read and check a model directory; every problem is a one-line CheckpointError."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"model '{directory}' does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"model '{directory}' is not a model directory")
    config_path, weights_path = directory / CONFIG_FILE, directory / MODEL_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"model '{directory}' has no {path.name}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_path}: corrupt config ({error})") from None
    if not isinstance(config, dict) or "kind" not in config or "model" not in config:
        raise CheckpointError(f"{config_path}: not an rlcomposer model config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: format version {config.get('format_version')!r} is not supported"
        )
    if expected_kinds is not None and config["kind"] not in expected_kinds:
        raise CheckpointError(
            f"model '{directory}' is a {config['kind']}, expected {' or '.join(expected_kinds)}"
        )
    try:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{weights_path}: corrupt or not a weights-only file ({reason})") from None
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise CheckpointError(f"{weights_path}: expected a dictionary of tensors")
    bad = non_finite_tensor(state_dict)
    if bad is not None:
        raise CheckpointError(f"{weights_path}: tensor '{bad}' holds NaN or infinite values")
    metrics: dict[str, Any] = {}
    metrics_path = directory / METRICS_FILE
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            metrics = {}
    return ModelFiles(directory, config["kind"], config, state_dict, metrics)
