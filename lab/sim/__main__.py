"""`python -m lab.sim`: see lab.sim.cli."""

import sys

from lab.sim.cli import main

sys.exit(main())
