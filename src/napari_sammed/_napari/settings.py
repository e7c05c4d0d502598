"""Small persistent settings (last checkpoint, device, precision) in the user's config dir."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _dir(env: str, fallback: str) -> Path:
    return Path(os.environ.get(env) or Path.home() / fallback) / "napari-sammed"


def settings_path() -> Path:
    return _dir("XDG_CONFIG_HOME", ".config") / "settings.json"


def cache_dir() -> Path:
    return _dir("XDG_CACHE_HOME", ".cache") / "embeddings"


def load_settings() -> dict:
    try:
        return json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return {}


def save_settings(**values) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(load_settings() | values, indent=2))
