"""The device runtime: numpy controller, edge server and device loop (no torch, no SB3).

``Controller.load(DIR).decide(obs) -> (k, bits)`` runs an exported bundle with numpy only.
"""

from slimrl.runtime.bundle import SCHEMA_VERSION, read_manifest
from slimrl.runtime.controller import Controller

__all__ = ["SCHEMA_VERSION", "Controller", "read_manifest"]
