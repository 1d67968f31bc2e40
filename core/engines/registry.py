"""Engine lookup by name, with the command line's short aliases."""

from __future__ import annotations

from core.config import DEFAULT_WORKSPACE
from core.engines.base import Engine
from core.errors import BadInputError

#: ``--engine`` aliases: a local score machine name selects the local score engine with it
MACHINE_ALIASES = {"is": "is", "ls": "ls", "els": "els", "bbels": "bbels"}
ENGINE_NAMES = ("local-score", "sd", "trained")
#: other spellings of engine names
ENGINE_ALIASES = {"stable-diffusion": "sd", "stablediffusion": "sd", "diffusers": "sd"}


def resolve(name: str) -> tuple[str, dict]:
    """Map an ``--engine`` value to (engine name, default request overrides)."""
    key = name.strip().lower()
    if key in MACHINE_ALIASES:
        return "local-score", {"machine": MACHINE_ALIASES[key]}
    key = ENGINE_ALIASES.get(key, key)
    if key in ENGINE_NAMES:
        return key, {}
    choices = ", ".join(list(ENGINE_NAMES) + list(MACHINE_ALIASES))
    raise BadInputError(f"Unknown engine {name!r}. Choose one of: {choices}.")


def get_engine(name: str, workspace: str = DEFAULT_WORKSPACE) -> Engine:
    """A fresh engine instance by (resolved) name; engines that read libraries read ``workspace``'s."""
    engine_name, _ = resolve(name)
    if engine_name in ("local-score", "trained"):
        from core.libraries import LibraryManager

        libraries = LibraryManager(workspace=workspace)
    if engine_name == "local-score":
        from core.engines.local_score import LocalScoreEngine

        return LocalScoreEngine(libraries=libraries)
    if engine_name == "sd":
        from core.engines.sd import StableDiffusionEngine

        return StableDiffusionEngine()
    if engine_name == "trained":
        from core.engines.trained import TrainedModelEngine

        return TrainedModelEngine(libraries=libraries)
    raise BadInputError(f"Engine {name!r} is not available.")
