"""Saving and loading the slimmable split model (a plain torch state dict plus its config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from slimrl.errors import ModelError
from slimrl.io import atomic_path
from slimrl.model.network import ModelConfig, SlimmableSplitModel

FORMAT = "slimrl.slimmable-split"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_NAME = "fmnist-slimmable.pt"
DEFAULT_WEIGHTS = WEIGHTS_DIR / WEIGHTS_NAME


def save_model(
    model: SlimmableSplitModel, path: str | os.PathLike, meta: dict | None = None
) -> Path:
    """Write ``model`` (weights, config, ``meta``) to ``path`` atomically."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    blob = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        # plain JSON types only, so that torch.load(weights_only=True) accepts the file
        "meta": json.loads(json.dumps(meta if meta is not None else model.meta, default=str)),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def load_model(path: str | os.PathLike) -> SlimmableSplitModel:
    """Load a checkpoint written by :func:`save_model`, in eval mode, full mode selected."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise ModelError(f"{path}: no such model checkpoint (run `slimrl pretrain` to make one)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable torch checkpoint ({reason})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{path}: not a slimrl slimmable split model (format field missing)")
    if blob.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{path}: checkpoint version {blob.get('version')}, this slimrl reads {FORMAT_VERSION}"
        )
    try:
        model = SlimmableSplitModel(ModelConfig.from_dict(blob["config"]))
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{path}: checkpoint does not match its config ({exc})") from exc
    model.meta = dict(blob.get("meta") or {})
    model.requires_grad_(False)
    return model.eval()


def load_pretrained(path: str | os.PathLike | None = None) -> SlimmableSplitModel:
    """The shipped Fashion-MNIST model (or the checkpoint at ``path``), ready for inference."""
    return load_model(DEFAULT_WEIGHTS if path is None else path)
