"""Model profiles (CSV, one row per mode) and device profiles (YAML)."""

from slimrl.profiles.device_profile import DeviceProfile
from slimrl.profiles.model_profile import ModelProfile

__all__ = ["DeviceProfile", "ModelProfile"]
