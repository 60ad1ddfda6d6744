"""Re-branching search: cut a wrong solution at its first flagged step, branch again, until one is right.

One search grows one problem's tree past depth one. Each round picks the most promising wrong nodes
(scored, not yet expanded; :mod:`prm_fire.search.select`), cuts each at a point chosen by a cut rule
(:mod:`prm_fire.search.cuts`: PRM-line, line k), branches ``n`` from every cut with FIRE or regular
sampling in one batched engine call, grades the branches and scores the wrong ones, until a branch is
correct or the token budget is spent (:mod:`prm_fire.search.engine`). ``strategy="best-of-n"`` runs the
baseline through the same loop: every round samples from scratch (the empty prefix).

The core never imports ``prm_models``: a scorer is any object with a ``name`` and a
``score(problem, steps)`` method returning per-step ``scores`` and a ``first_error_index`` (every
scorer of ``prm_models`` does).
"""

from prm_fire.search.config import SearchConfig, Strategy
from prm_fire.search.cuts import CUTS, make_cut
from prm_fire.search.engine import Search, run_searches, search, start_search
from prm_fire.search.records import FirstCorrect, RoundRecord, SearchResult
from prm_fire.search.select import SELECTIONS

__all__ = ["CUTS", "FirstCorrect", "RoundRecord", "SELECTIONS", "Search", "SearchConfig", "SearchResult",
           "Strategy", "make_cut", "run_searches", "search", "start_search"]
