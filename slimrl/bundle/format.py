"""The exported policy bundle on disk: file names, schema version, checksums.

A bundle is a folder with ``policy.onnx``, ``policy.npz`` and ``manifest.json``; the manifest
lists the sha256 of every other file. The export writes it, the runtime verifies it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slimrl.errors import BundleError
from slimrl.io import sha256_file

SCHEMA_VERSION = 1
FORMAT = "slimrl-policy-bundle"
MANIFEST = "manifest.json"
ONNX_FILE = "policy.onnx"
NPZ_FILE = "policy.npz"
REQUIRED_KEYS = ("schema_version", "files", "observation", "action", "network")


def read_manifest(bundle_dir: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """Load ``manifest.json``, check its schema version and (``verify``) every file's sha256."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: no such bundle folder (export one with `slimrl export`)")
    if not path.is_file():
        raise BundleError(f"{path}: missing; {bundle_dir} is not a slimrl policy bundle")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{path}: field 'schema_version' missing or not an integer")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{path}: bundle schema version {version} is newer than this slimrl supports "
            f"(schema version {SCHEMA_VERSION}); upgrade slimrl or re-export the run"
        )
    if version < 1:
        raise BundleError(f"{path}: invalid schema version {version}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{path}: missing field(s) {', '.join(missing)}")
    if verify:
        verify_files(bundle_dir, manifest)
    return manifest


def verify_files(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    """Raise :class:`BundleError` unless every listed file exists with its recorded sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or NPZ_FILE not in files:
        raise BundleError(f"{bundle_dir / MANIFEST}: field 'files' must list {NPZ_FILE}")
    for name, expected in files.items():
        p = bundle_dir / name
        if Path(name).name != name:
            raise BundleError(f"{bundle_dir / MANIFEST}: file name {name!r} must be a plain name")
        if not p.is_file():
            raise BundleError(f"{p}: missing (listed in the manifest)")
        got = sha256_file(p)
        if got != expected:
            raise BundleError(
                f"{p}: sha256 {got[:12]}... does not match the manifest's {str(expected)[:12]}...; "
                "the bundle is corrupt or was modified, re-export it"
            )
