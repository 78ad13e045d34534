"""The slimmable split model: Fashion-MNIST data, the network, its payload format, pretraining and
profiling.

Runtime API (torch is imported on first use of a model name, so ``slimrl.model.payload`` and
``slimrl.model.data`` stay light)::

    from slimrl.model import load_pretrained, payload_size
    model = load_pretrained()            # shipped weights
    model.set_mode(k=2, bits=4)          # attribute change, no reload
    payloads = model.encode(images)      # device: uint8 (N, 28, 28) -> list[bytes]
    logits = model.decode(payloads[0])   # edge: bytes -> float32 (10,)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimrl.model.payload import Payload, parse_payload, payload_size

if TYPE_CHECKING:
    from slimrl.model.checkpoint import load_model, load_pretrained, save_model
    from slimrl.model.network import ModelConfig, SlimmableSplitModel, Teacher

_LAZY = {
    "load_pretrained": "slimrl.model.checkpoint",
    "load_model": "slimrl.model.checkpoint",
    "save_model": "slimrl.model.checkpoint",
    "DEFAULT_WEIGHTS": "slimrl.model.checkpoint",
    "SlimmableSplitModel": "slimrl.model.network",
    "ModelConfig": "slimrl.model.network",
    "Teacher": "slimrl.model.network",
}

__all__ = [
    "DEFAULT_WEIGHTS",
    "ModelConfig",
    "Payload",
    "SlimmableSplitModel",
    "Teacher",
    "load_model",
    "load_pretrained",
    "parse_payload",
    "payload_size",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slimrl.model' has no attribute {name!r}")
