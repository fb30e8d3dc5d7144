"""Find GGUF models: the bundled one, then the user's model folders."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelFileError
from ..paths import bundled_model_path
from .gguf_info import ModelFacts, read_model_facts

MODEL_DIRS_ENV = "TPW_MODEL_DIRS"


def model_folders(extra: list[Path] | None = None) -> list[Path]:
    """Folders given, then $TPW_MODEL_DIRS, then ~/models; only those that exist, once each."""
    folders = list(extra or [])
    folders += [Path(p) for p in os.environ.get(MODEL_DIRS_ENV, "").split(os.pathsep) if p]
    folders.append(Path.home() / "models")
    seen, result = set(), []
    for folder in folders:
        folder = folder.expanduser()
        key = folder.resolve() if folder.exists() else folder
        if folder.is_dir() and key not in seen:
            seen.add(key)
            result.append(folder)
    return result


def find_models(extra: list[Path] | None = None) -> list[tuple[Path, ModelFacts | None, str | None]]:
    """(path, facts, problem) for the bundled model and every *.gguf in the folders.

    A file that isn't a usable GGUF is listed with its problem rather than hidden.
    """
    found: list[tuple[Path, ModelFacts | None, str | None]] = []
    seen: set[Path] = set()
    candidates = [p for p in [bundled_model_path()] if p is not None]
    for folder in model_folders(extra):
        candidates += sorted(folder.rglob("*.gguf"))
    for path in candidates:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            found.append((path, read_model_facts(path), None))
        except ModelFileError as exc:
            found.append((path, None, exc.problem))
    return found
