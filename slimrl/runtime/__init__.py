"""The device runtime: numpy controller, edge server and client, paced uplink, device loop.

Importing it needs neither torch nor Stable-Baselines3:
``Controller.load(DIR).decide(obs) -> (k, bits)`` runs an exported bundle with numpy only.
"""

from slimrl.bundle.controller import Controller
from slimrl.bundle.format import SCHEMA_VERSION, read_manifest
from slimrl.runtime.device import DeviceLoop, FrameRecord
from slimrl.runtime.edge_client import EdgeClient, EdgeRejected, EdgeUnavailable
from slimrl.runtime.edge_server import EdgeServer, EdgeServerThread
from slimrl.runtime.uplink import TraceUplink, UplinkTimeout

__all__ = [
    "SCHEMA_VERSION",
    "Controller",
    "DeviceLoop",
    "EdgeClient",
    "EdgeRejected",
    "EdgeServer",
    "EdgeServerThread",
    "EdgeUnavailable",
    "FrameRecord",
    "TraceUplink",
    "UplinkTimeout",
    "read_manifest",
]
