"""Table 5, stage 'insertion': `python experiments/run_insertion.py --config cpu-small` (same options as `prm-fire table5`)."""

import sys

from prm_app.cli import main

if __name__ == "__main__":  # vLLM backends spawn workers: keep the guard
    sys.exit(main(["table5", "--stage", "insertion", *sys.argv[1:]]))
