"""`python -m cvkd` (also what `torchrun -m cvkd` runs)."""

from cvkd.cli import main

raise SystemExit(main())
