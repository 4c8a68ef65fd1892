"""The teacher cache as a job of its own (`cvkd cache`): what `cvkd train` would build before its first epoch, built
alone or under torchrun, in the run folder where the training then finds and reuses it."""

from __future__ import annotations

from pathlib import Path

from cvkd.engine.runtime import start_runtime
from cvkd.engine.train import CACHE_FOLDER, attach_cache, build_run, check_shared_folder
from cvkd.errors import ConfigError
from cvkd.fileio import make_folder
from cvkd.runs.schema import RunConfig
from cvkd.runs.validate import validate_run_config


def build_run_cache(config: RunConfig, progress: bool = True) -> Path:
    """Build (or find) the teacher cache of the run `config` describes; return its folder."""
    validate_run_config(config)
    if not config.distill.teachers:
        raise ConfigError("distill.teachers is empty: a teacher cache needs teachers")
    if not config.distill.cache:
        raise ConfigError("distill.cache is false: the training would not read the cache; set distill.cache=true here "
                          "and in the training")
    with start_runtime(config.device, config.dist_timeout_minutes) as runtime:
        parts = build_run(config, runtime, progress)
        if runtime.is_main:
            make_folder(parts.out)
        check_shared_folder(parts.out, runtime)
        attach_cache(parts)
        return parts.out / CACHE_FOLDER
