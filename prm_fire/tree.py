"""The tree of alternatives: problem -> response -> prefix (insertion point) -> branch [-> prefix -> branch ...].

A ``networkx.DiGraph`` whose every node carries one pydantic record under the attribute ``"data"``.
Node ids spell the path: ``problem``, ``r0``, ``r0/line2``, ``r0/line2/fire/3``. A branch may be cut
again (a search re-branches at its first flagged step): its prefix node hangs under the branch,
``r0/prm/fire/3/prm``, and the prefix is the start of the branch's full text (its parent prefix + its
own text, :func:`node_text`). The JSON file is networkx's node-link format with a schema version,
validated by pydantic when read back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prm_fire.records import BranchSet, GradedBranch
from prm_fire.grader import Grade, answers_equivalent
from prm_fire.metrics import effective_answers, pass_at_k
from prm_fire.prefixes import Prefix
from prm_fire.atomic import write_atomic
from prm_fire.problems import Problem
from prm_fire.sampling import Method, SamplingConfig
from prm_fire.steps import Step, StepMode, split_steps

SCHEMA_VERSION = 1


class ProblemNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["problem"] = "problem"
    problem: Problem


class ResponseNode(BaseModel):
    """A full response, its steps, its grade and (when a PRM scored it) per-step scores."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["response"] = "response"
    text: str
    origin: str = Field(description="Where it came from: 'given', 'dataset', 'sampled:<model>'.")
    step_mode: StepMode = "line"
    steps: list[Step]
    grade: Grade | None = None
    prm: str | None = Field(default=None, description="Name of the PRM that scored the steps.")
    step_scores: list[float] | None = None
    step_reasons: list[list[str]] | None = Field(
        default=None, description="Per step, why the PRM flagged it (the rules that fired), when it says."
    )
    first_error_index: int | None = None

    @model_validator(mode="after")
    def _steps_match_text(self) -> ResponseNode:
        if self.steps != split_steps(self.text, self.step_mode):
            raise ValueError(f"steps do not match the text split by {self.step_mode} (text or steps were edited)")
        if self.first_error_index is not None and not 0 <= self.first_error_index < len(self.steps):
            raise ValueError(f"first_error_index {self.first_error_index} is outside the {len(self.steps)} steps")
        if self.step_scores is not None and len(self.step_scores) != len(self.steps):
            raise ValueError(f"{len(self.step_scores)} step_scores for {len(self.steps)} steps")
        return self


class PrefixNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["prefix"] = "prefix"
    prefix: Prefix


class BranchNode(BaseModel):
    """A graded branch; a search also scores its full text (parent prefix + branch) step by step."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["branch"] = "branch"
    model: str
    sampling: SamplingConfig
    branch: GradedBranch
    prm: str | None = Field(default=None, description="Name of the PRM that scored the full text's steps.")
    step_mode: StepMode = "line"
    step_scores: list[float] | None = Field(default=None, description="One score per step of the full text.")
    step_reasons: list[list[str]] | None = None
    first_error_index: int | None = Field(default=None, ge=0, description="First flagged step of the full text.")


Node = Annotated[Union[ProblemNode, ResponseNode, PrefixNode, BranchNode], Field(discriminator="kind")]


class _NodeEntry(BaseModel):
    id: str
    data: Node


class _EdgeEntry(BaseModel):
    source: str
    target: str


class TreeFile(BaseModel):
    """The JSON document: networkx node-link data plus ``schema_version``."""

    schema_version: Literal[1]
    directed: Literal[True] = True
    multigraph: Literal[False] = False
    graph: dict[str, Any] = Field(default_factory=dict)
    nodes: list[_NodeEntry]
    edges: list[_EdgeEntry]


class TreeError(ValueError):
    """A tree file that is not valid JSON or not a tree of alternatives."""


def new_tree(problem: Problem) -> nx.DiGraph:
    """A tree holding only its root, the problem."""
    tree = nx.DiGraph(schema_version=SCHEMA_VERSION)
    tree.add_node("problem", data=ProblemNode(problem=problem))
    return tree


def add_response(
    tree: nx.DiGraph,
    text: str,
    *,
    origin: str,
    step_mode: StepMode = "line",
    grade: Grade | None = None,
    prm: str | None = None,
    step_scores: list[float] | None = None,
    first_error_index: int | None = None,
    step_reasons: list[list[str]] | None = None,
) -> str:
    """Add a response under the problem; returns its node id (``r0``, ``r1``, ...)."""
    node_id = f"r{sum(1 for _ in tree.successors('problem'))}"
    record = ResponseNode(
        text=text,
        origin=origin,
        step_mode=step_mode,
        steps=split_steps(text, step_mode),
        grade=grade,
        prm=prm,
        step_scores=step_scores,
        step_reasons=step_reasons,
        first_error_index=first_error_index,
    )
    tree.add_node(node_id, data=record)
    tree.add_edge("problem", node_id)
    return node_id


def node_text(tree: nx.DiGraph, node_id: str) -> str:
    """The full text of a response node, or of a branch node (its parent prefix's text + its own text)."""
    record = tree.nodes[node_id]["data"]
    if record.kind == "response":
        return record.text
    if record.kind == "branch":
        [parent] = tree.predecessors(node_id)
        return tree.nodes[parent]["data"].prefix.text + record.branch.text
    raise ValueError(f"node {node_id!r} is a {record.kind} node: only responses and branches have a full text")


def add_branch_set(tree: nx.DiGraph, response_id: str, branch_set: BranchSet, *, name: str | None = None) -> str:
    """Add a prefix node under ``response_id`` (once per insertion point) and one node per branch.

    ``response_id`` may also name a branch node (a re-branch from a branch's own text). The prefix node
    is ``<response_id>/<name>``, ``name`` defaulting to the insertion point. Returns the prefix node id.
    Two methods (FIRE and regular) from one prefix share its node.
    """
    if response_id not in tree or tree.nodes[response_id]["data"].kind not in ("response", "branch"):
        raise KeyError(f"tree has no response node {response_id!r}")
    if not node_text(tree, response_id).startswith(branch_set.prefix.text):
        raise ValueError(f"prefix {branch_set.prefix.point!r} is not the start of node {response_id!r}'s text")
    prefix_id = f"{response_id}/{name or branch_set.prefix.point}"
    if prefix_id in tree:
        if tree.nodes[prefix_id]["data"].prefix.text != branch_set.prefix.text:
            raise ValueError(f"prefix node {prefix_id!r} already holds a different prefix text")
    else:
        tree.add_node(prefix_id, data=PrefixNode(prefix=branch_set.prefix))
        tree.add_edge(response_id, prefix_id)
    method = branch_set.sampling.method
    for b in branch_set.branches:
        branch_id = f"{prefix_id}/{method}/{b.index}"
        if branch_id in tree:
            raise ValueError(f"tree already has branch {branch_id!r}")
        tree.add_node(branch_id, data=BranchNode(model=branch_set.model, sampling=branch_set.sampling, branch=b))
        tree.add_edge(prefix_id, branch_id)
    return prefix_id


def add_scores(
    tree: nx.DiGraph,
    node_id: str,
    *,
    prm: str,
    step_scores: list[float],
    first_error_index: int | None,
    step_reasons: list[list[str]] | None = None,
) -> None:
    """Record a PRM's step scores of a response's or a branch's full text on its node."""
    record = tree.nodes[node_id]["data"]
    if record.kind not in ("response", "branch"):
        raise ValueError(f"node {node_id!r} is a {record.kind} node: only responses and branches are scored")
    update = dict(prm=prm, step_scores=step_scores, first_error_index=first_error_index, step_reasons=step_reasons)
    scored = type(record).model_validate({**record.model_dump(), **update})  # validated (model_copy is not)
    if scored.kind == "branch":
        _check_branch_scores(tree, node_id, scored, node_text(tree, node_id))
    tree.nodes[node_id]["data"] = scored


def _check_branch_scores(tree: nx.DiGraph, node_id: str, record: BranchNode, text: str) -> None:
    n_steps = len(split_steps(text, record.step_mode))
    if record.step_scores is not None and len(record.step_scores) != n_steps:
        raise ValueError(f"node {node_id!r}: {len(record.step_scores)} step_scores for {n_steps} steps")
    if record.first_error_index is not None and record.first_error_index >= n_steps:
        raise ValueError(f"node {node_id!r}: first_error_index {record.first_error_index} is outside the "
                         f"{n_steps} steps")


def tree_depth(tree: nx.DiGraph) -> int:
    """The most prefix nodes on one path from the root: 1 for a single cut, 2 once a branch was cut again."""
    depth: dict[str, int] = {}
    for node_id in nx.topological_sort(tree):
        parents = list(tree.predecessors(node_id))
        above = depth[parents[0]] if parents else 0
        depth[node_id] = above + (tree.nodes[node_id]["data"].kind == "prefix")
    return max(depth.values(), default=0)


def branches_of(tree: nx.DiGraph, prefix_id: str, method: Method) -> list[GradedBranch]:
    """The branches under a prefix node drawn with ``method``, by index."""
    found = [tree.nodes[c]["data"].branch for c in tree.successors(prefix_id)]
    return sorted((b for b in found if b.method == method), key=lambda b: b.index)


class PrefixSummary(BaseModel):
    """What a prefix's branches of one method add up to."""

    point: str
    method: Method
    n: int
    correct: int
    pass_at: dict[int, float]
    effective_answers: int
    distinct_first_tokens: int


def summarize(tree: nx.DiGraph, prefix_id: str, method: Method, ks: tuple[int, ...] = (1, 10)) -> PrefixSummary:
    """n, correct count, pass@k for each k <= n, #EA and distinct first tokens of one prefix and method."""
    branches = branches_of(tree, prefix_id, method)
    n, c = len(branches), sum(b.correct for b in branches)
    return PrefixSummary(
        point=tree.nodes[prefix_id]["data"].prefix.point,
        method=method,
        n=n,
        correct=c,
        pass_at={k: pass_at_k(n, c, k) for k in ks if k <= n},
        effective_answers=effective_answers([b.answer for b in branches], answers_equivalent),
        distinct_first_tokens=len({b.first_token_id for b in branches}),
    )


def tree_to_json(tree: nx.DiGraph) -> str:
    """The tree as node-link JSON with ``schema_version``."""
    data = nx.node_link_data(tree, edges="edges")
    data["graph"] = dict(data["graph"])  # node_link_data shares the tree's own dict: never edit it
    data["schema_version"] = data["graph"].pop("schema_version", SCHEMA_VERSION)
    return TreeFile.model_validate(data).model_dump_json(indent=1)


def tree_from_json(text: str, *, source: str = "<string>") -> nx.DiGraph:
    """Read a tree back; a malformed document raises :class:`TreeError` naming ``source`` and the problem."""
    try:
        doc = TreeFile.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        node = _node_named(text, first["loc"])
        raise TreeError(f"{source}: not a prm-fire tree ({err.error_count()} errors; first at "
                        f"{where}: {first['msg']}{node})") from None
    tree = nx.DiGraph(**doc.graph, schema_version=doc.schema_version)
    for entry in doc.nodes:
        if entry.id in tree:  # a second record would silently replace the first
            raise TreeError(f"{source}: node id {entry.id!r} appears more than once")
        tree.add_node(entry.id, data=entry.data)
    for edge in doc.edges:
        for end in (edge.source, edge.target):
            if end not in tree:
                raise TreeError(f"{source}: edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}")
        tree.add_edge(edge.source, edge.target)
    if "problem" not in tree or not nx.is_arborescence(tree):
        raise TreeError(f"{source}: nodes and edges do not form a tree rooted at 'problem'")
    for node_id in nx.topological_sort(tree):  # parents first: a branch's text needs its prefix checked
        record = tree.nodes[node_id]["data"]
        if record.kind == "prefix":
            [parent] = tree.predecessors(node_id)
            above = tree.nodes[parent]["data"]
            if above.kind not in ("response", "branch") or not node_text(tree, parent).startswith(record.prefix.text):
                raise TreeError(f"{source}: node {node_id!r}: its prefix is not the start of {above.kind} {parent!r}")
        elif record.kind == "branch":
            [parent] = tree.predecessors(node_id)
            if tree.nodes[parent]["data"].kind != "prefix":
                raise TreeError(f"{source}: node {node_id!r}: a branch must hang under a prefix, not {parent!r}")
            try:
                _check_branch_scores(tree, node_id, record, node_text(tree, node_id))
            except ValueError as err:
                raise TreeError(f"{source}: {err}") from None
    return tree


def _node_named(text: str, loc: tuple) -> str:
    """``; node 'r0'`` for a validation error inside ``nodes[i]`` (the id read from the raw JSON)."""
    if len(loc) < 2 or loc[0] != "nodes" or not isinstance(loc[1], int):
        return ""
    try:
        node_id = json.loads(text)["nodes"][loc[1]]["id"]
    except (ValueError, LookupError, TypeError):
        return ""
    return f"; node {node_id!r}"


def save_tree(tree: nx.DiGraph, path: str | Path) -> Path:
    """Write the tree's JSON to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, tree_to_json(tree))
    return path


def load_tree(path: str | Path) -> nx.DiGraph:
    """Read a tree written by :func:`save_tree`."""
    path = Path(path)
    return tree_from_json(path.read_text(), source=str(path))


def trees_equal(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    """Same nodes, same edges, same records on every node."""
    return (
        set(a.edges) == set(b.edges)
        and a.nodes.keys() == b.nodes.keys()
        and all(a.nodes[n]["data"] == b.nodes[n]["data"] for n in a.nodes)
    )
