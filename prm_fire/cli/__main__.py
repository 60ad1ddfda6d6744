"""``python -m prm_fire.cli``: the same as the ``prm-fire`` script."""

import sys

from prm_fire.cli import main

sys.exit(main())
