"""Before Table 5: `python experiments/pass_rate.py --config cpu-small --levels 1,2,3 --per-level 8 --samples 4`
(same options as `prm-fire table5`): the policy's pass rate by MATH level, to choose the subset."""

import sys

from prm_app.cli import main

if __name__ == "__main__":  # vLLM backends spawn workers: keep the guard
    sys.exit(main(["table5", "--stage", "pass-rate", *sys.argv[1:]]))
