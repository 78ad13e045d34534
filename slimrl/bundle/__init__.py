"""The exported policy bundle: its on-disk format and the numpy controller that runs it.

A leaf of the package (numpy only; onnxruntime on request): policies, export and the device
runtime all use it, and it uses none of them. ``Controller.load(DIR).decide(obs) -> (k, bits)``.
"""

from slimrl.bundle.controller import Controller
from slimrl.bundle.format import MANIFEST, NPZ_FILE, ONNX_FILE, SCHEMA_VERSION, read_manifest

__all__ = ["MANIFEST", "NPZ_FILE", "ONNX_FILE", "SCHEMA_VERSION", "Controller", "read_manifest"]
