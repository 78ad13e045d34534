"""The split model seen from the runtime: an edge ``infer`` and a device ``encode``.

torch is imported only when a model is loaded (by :mod:`slimrl.model`), never by importing this.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from slimrl.errors import BundleError
from slimrl.runtime.device import Encode
from slimrl.runtime.edge_server import Infer


def load_split_model(path: str | os.PathLike | None = None, threads: int | None = None) -> Any:
    """The pretrained model (shipped weights, or the checkpoint at ``path``), warmed up."""
    from slimrl.model import load_pretrained

    if threads:
        import torch

        torch.set_num_threads(int(threads))
    model = load_pretrained(path)
    warm = np.zeros((1, 28, 28), dtype=np.uint8)
    for k, bits in (model.modes[0], model.modes[-1]):
        model.set_mode(k, bits)
        model.decode(model.encode(warm)[0])
    return model


def edge_infer(model: Any) -> Infer:
    """Decoder + tail: payload bytes -> predicted class (raises ``ModelError`` on a bad payload)."""

    def infer(payload: bytes) -> int:
        return int(np.argmax(model.decode(payload)))

    return infer


def device_encoder(model: Any, images: np.ndarray) -> Encode:
    """Head + encoder of image ``i`` at mode ``(k, bits)`` -> payload bytes."""

    def encode(i: int, k: int, bits: int) -> bytes:
        model.set_mode(k, bits)
        return model.encode(images[i : i + 1])[0]

    return encode


def check_modes(table: Iterable[tuple[int, int]], model: Any, what: str = "the bundle") -> None:
    """Refuse a policy whose modes the model cannot run."""
    have = set(model.modes)
    missing = [m for m in table if tuple(m) not in have]
    if missing:
        shown = ", ".join(f"(k={k}, bits={b})" for k, b in missing[:6])
        raise BundleError(
            f"{what} chooses modes the model does not have: {shown}"
            f"{' ...' if len(missing) > 6 else ''}; the model runs k in {list(model.ks)}, "
            f"bits in {list(model.bits_options)}. Was the policy trained on another model's "
            "profile?"
        )
