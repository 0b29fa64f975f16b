"""`python -m edgeseg ...` (and `torchrun ... -m edgeseg train ...`)."""

from edgeseg.cli import main

raise SystemExit(main())
