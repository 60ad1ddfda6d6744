"""``python -m prm_app.cli``: the same as the ``prm-fire`` script."""

import sys

from prm_app.cli import main

sys.exit(main())
