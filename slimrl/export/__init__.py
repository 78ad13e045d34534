"""Export a trained run to a device bundle: ``policy.onnx``, ``policy.npz``, ``manifest.json``."""

from slimrl.export.exporter import export_model, export_run
from slimrl.export.policy_net import SUPPORTED_ALGOS, PolicyNet, extract_policy

__all__ = ["SUPPORTED_ALGOS", "PolicyNet", "export_model", "export_run", "extract_policy"]
