"""``python -m fog.evaluation``: the SUMO evaluation without the fog's CLI."""

import sys

from fog.evaluation.cli import main

sys.exit(main())
