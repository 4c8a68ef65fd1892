"""Launched by torchrun (2 processes): train a tiny run where rank 1 writes to another folder than rank 0, as two
machines without a shared file system would; prints the one-line error each rank gets."""

from __future__ import annotations

import os
import sys

from cvkd.config import load_config
from cvkd.engine.train import train
from cvkd.errors import CvkdError
from cvkd.runs.schema import RunConfig

overrides = sys.argv[1:]
config = load_config(RunConfig, None, overrides)
if os.environ.get("RANK") == "1":
    config.output_dir = config.output_dir + "_elsewhere"
try:
    train(config, progress=False)
except CvkdError as error:
    print(f"rank {os.environ.get('RANK')}: {error}", flush=True)
    sys.exit(2)
