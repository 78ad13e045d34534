"""The exported policy bundle on disk: file names, schema version, checksums.

A bundle is a folder with ``policy.onnx``, ``policy.npz`` and ``manifest.json``; the manifest
lists the sha256 of every other file. The export writes it, the runtime verifies it.

Bundles are untrusted input: every read is bounded (:data:`MAX_MANIFEST_BYTES`,
:data:`MAX_FILE_BYTES`, the ``.npz`` limits below), a file is read once into memory, checked
against its sha256 and parsed from those very bytes (nothing is re-read after the check), and a
file the manifest does not list is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from slimrl.errors import BundleError
from slimrl.io import sha256_file
from slimrl.validate import read_bytes

__all__ = ["read_manifest", "read_verified", "sha256_file", "verify_files"]

SCHEMA_VERSION = 1
FORMAT = "slimrl-policy-bundle"
MANIFEST = "manifest.json"
ONNX_FILE = "policy.onnx"
NPZ_FILE = "policy.npz"
REQUIRED_KEYS = ("schema_version", "files", "observation", "action", "network")
#: largest manifest read (bytes)
MAX_MANIFEST_BYTES = 1 << 20
#: largest listed file (policy.onnx, policy.npz) read and hashed (bytes)
MAX_FILE_BYTES = 64 << 20
#: most files a manifest may list
MAX_FILES = 16
#: policy.npz: most arrays, largest array and all arrays together once decompressed (bytes)
MAX_NPZ_MEMBERS = 64
MAX_NPZ_MEMBER_BYTES = 64 << 20
MAX_NPZ_TOTAL_BYTES = 128 << 20


def read_manifest(bundle_dir: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """Load ``manifest.json``, check its schema version and (``verify``) every file's sha256."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: no such bundle folder (export one with `slimrl export`)")
    if not path.is_file():
        raise BundleError(f"{path}: missing; {bundle_dir} is not a slimrl policy bundle")
    data = read_bytes(path, MAX_MANIFEST_BYTES, BundleError)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{path}: not valid JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise BundleError(f"{path}: not valid JSON (nested too deeply)") from None
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


def verify_files(bundle_dir: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Every listed file's content, checked against its recorded sha256 (:class:`BundleError`
    when one is missing, too large or different)."""
    files = _listed(bundle_dir, manifest)
    return {name: read_verified(bundle_dir, manifest, name) for name in files}


def _listed(bundle_dir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    where = bundle_dir / MANIFEST
    files = manifest.get("files")
    if not isinstance(files, dict) or NPZ_FILE not in files:
        raise BundleError(f"{where}: field 'files' must list {NPZ_FILE}")
    if len(files) > MAX_FILES:
        raise BundleError(f"{where}: field 'files' lists {len(files)} files; at most {MAX_FILES}")
    for name, expected in files.items():
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise BundleError(f"{where}: file name {str(name)[:60]!r} must be a plain name")
        if not isinstance(expected, str) or len(expected) != 64:
            raise BundleError(f"{where}: files.{name}: expected a sha256 (64 hex digits)")
    return files


def read_verified(bundle_dir: Path, manifest: dict[str, Any], name: str) -> bytes:
    """The content of ``name``, which the manifest must list, checked against its sha256."""
    files = _listed(bundle_dir, manifest)
    p = bundle_dir / name
    if name not in files:
        raise BundleError(
            f"{p}: not listed in {MANIFEST}; its content cannot be verified, refusing to load it"
        )
    if not p.is_file():
        raise BundleError(f"{p}: missing (listed in the manifest)")
    data = read_bytes(p, MAX_FILE_BYTES, BundleError)
    got = hashlib.sha256(data).hexdigest()
    expected = files[name]
    if got != expected:
        raise BundleError(
            f"{p}: sha256 {got[:12]}... does not match the manifest's {expected[:12]}...; "
            "the bundle is corrupt or was modified, re-export it"
        )
    return data
