"""The tree as a static figure for papers: a labelled graph, written as DOT (pydot) or PNG (matplotlib).

:func:`label_graph` copies the tree's structure with short text labels (problem, response and its
verdict, insertion point and its kept steps, branch with its hot first token and answer);
:func:`write_dot` writes it with ``networkx.drawing.nx_pydot`` (extra ``view``: ``pydot``) and
:func:`write_png` draws it with matplotlib, one row per depth, leaves side by side and every parent
centred over its children (:func:`layered_layout`).
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from prm_fire.atomic import replacing, write_atomic
from prm_fire.tree import BranchNode, PrefixNode, ProblemNode, ResponseNode
from prm_fire.view import visible_token

_METHOD_TAG = {"fire": "F", "regular": "R"}
_FILL = {"problem": "#e4e7ec", "response": "#d1e0ff", "prefix": "#e9d7fe",
         True: "#c6f6d5", False: "#fed7d7", None: "#f2f4f7"}


def _verdict(correct: bool | None) -> str:
    return {True: "\u2713", False: "\u2717", None: "?"}[correct]


def _short(text: str | None, width: int = 18) -> str:
    if text is None:
        return "none"
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def label_graph(tree: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``tree``'s structure whose nodes carry only strings: ``label``, ``kind``, ``fill``.

    ``kind`` is problem, response, prefix, fire or regular (the branch's method); ``fill`` a colour
    (branches: green correct, red incorrect, grey ungraded).
    """
    out = nx.DiGraph()
    for node_id, attrs in tree.nodes(data=True):
        record = attrs["data"]
        if isinstance(record, ProblemNode):
            p = record.problem
            label, kind, fill = f"{p.id}\ngold {_short(p.answer)}", "problem", _FILL["problem"]
        elif isinstance(record, ResponseNode):
            verdict = ""
            if record.grade is not None:
                verdict = f"\n{_short(record.grade.predicted)} {_verdict(record.grade.correct)}"
            label, kind, fill = f"{node_id}\n{record.origin}{verdict}", "response", _FILL["response"]
        elif isinstance(record, PrefixNode):
            pre = record.prefix
            label, kind, fill = f"{pre.point}\nkeeps {pre.kept_steps}", "prefix", _FILL["prefix"]
        elif isinstance(record, BranchNode):
            b = record.branch
            correct = b.grade.correct if b.grade is not None else None
            tag = _METHOD_TAG.get(b.method, b.method)
            label = f"{tag}#{b.index} {_short(visible_token(b.first_token), 10)}\n{_short(b.answer, 10)} {_verdict(correct)}"
            kind, fill = b.method, _FILL[correct]
        else:  # pragma: no cover - the tree's schema admits no other record
            raise ValueError(f"node {node_id!r}: unknown record {type(record).__name__}")
        out.add_node(node_id, label=label, kind=kind, fill=fill)
    out.add_edges_from(tree.edges)
    return out


def to_dot(tree: nx.DiGraph) -> str:
    """DOT text of :func:`label_graph` (needs pydot: ``pip install prm-fire[view]``)."""
    try:
        from networkx.drawing.nx_pydot import to_pydot
    except ImportError as err:  # pragma: no cover - networkx always has it; pydot is checked below
        raise ImportError("--format dot needs pydot: pip install 'prm-fire[view]'") from err
    graph = label_graph(tree)
    dot_graph = nx.DiGraph(rankdir="TB")
    shapes = {"problem": "box", "response": "box", "prefix": "hexagon", "fire": "ellipse", "regular": "ellipse"}
    for node_id, a in graph.nodes(data=True):
        dot_graph.add_node(
            node_id,
            label=a["label"].replace("\\", "\\\\"),
            shape=shapes[a["kind"]],
            style="filled",
            fillcolor=a["fill"],
            color={"fire": "#d9480f", "regular": "#1c64b9"}.get(a["kind"], "#475467"),
        )
    dot_graph.add_edges_from(graph.edges)
    try:
        return to_pydot(dot_graph).to_string()
    except ModuleNotFoundError as err:
        raise ImportError("--format dot needs pydot: pip install 'prm-fire[view]'") from err


def write_dot(tree: nx.DiGraph, path: str | Path) -> Path:
    """Write :func:`to_dot` to ``path`` (render it with Graphviz: ``dot -Tpdf tree.dot``)."""
    path = Path(path)
    text = to_dot(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return path


def layered_layout(tree: nx.DiGraph, root: str = "problem") -> dict[str, tuple[float, float]]:
    """Positions from the tree's shape alone: y = -depth, leaves at x = 0, 1, 2, ... in depth-first
    order, each inner node at the mean x of its children.

    >>> t = nx.DiGraph([("problem", "r0"), ("r0", "a"), ("r0", "b")])
    >>> layered_layout(t)
    {'a': (0.0, -2.0), 'b': (1.0, -2.0), 'r0': (0.5, -1.0), 'problem': (0.5, 0.0)}
    """
    pos: dict[str, tuple[float, float]] = {}
    next_leaf = [0.0]

    def place(node: str, depth: int) -> float:
        children = list(tree.successors(node))
        if children:
            x = sum(place(c, depth + 1) for c in children) / len(children)
        else:
            x, next_leaf[0] = next_leaf[0], next_leaf[0] + 1
        pos[node] = (x, float(-depth))
        return x

    place(root, 0)
    return pos


def write_png(tree: nx.DiGraph, path: str | Path, *, dpi: int = 150) -> Path:
    """Draw the tree with matplotlib (Agg, no screen needed) and save it as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = label_graph(tree)
    pos = layered_layout(graph)
    width = max(len([n for n in graph if graph.out_degree(n) == 0]), 3)
    depth = int(-min(y for _, y in pos.values())) + 1
    fig, ax = plt.subplots(figsize=(min(1.15 * width + 1.5, 60), 1.3 * depth + 0.8))
    nx.draw_networkx_edges(graph, pos, ax=ax, arrows=False, edge_color="#98a2b3", width=1.0)
    edge = {"fire": "#d9480f", "regular": "#1c64b9"}
    for node_id, a in graph.nodes(data=True):
        x, y = pos[node_id]
        ax.text(
            x, y, a["label"], ha="center", va="center", fontsize=7.5, parse_math=False,
            bbox={"boxstyle": "round,pad=0.35", "fc": a["fill"], "ec": edge.get(a["kind"], "#475467"), "lw": 1.2},
        )
    ax.set_xlim(min(x for x, _ in pos.values()) - 0.7, max(x for x, _ in pos.values()) + 0.7)
    ax.set_ylim(-depth + 0.5, 0.5)
    ax.axis("off")
    problem = tree.nodes["problem"]["data"].problem
    ax.set_title(f"{problem.id}: F = FIRE, R = regular branch; hot first token, answer, \u2713/\u2717", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path
