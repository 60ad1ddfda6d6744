"""See the tree: one self-contained HTML page of a tree of alternatives.

:func:`render_html` turns a tree (:mod:`prm_fire.tree`) into one HTML string with its CSS and JS
inline and no network access: the problem and gold answer; each response with its steps coloured by
PRM score (first incorrect step marked); each insertion point as a collapsible node showing the cut
(kept steps, then the dropped ones); under it, its branches grouped by method with the hot first token
highlighted, their final answers and a correct/incorrect mark; and one summary line per prefix and
method (:func:`prm_fire.tree.summarize`).

Every text is HTML-escaped, and the tree JSON embedded in the page (``<script type="application/json"
id="prm-fire-tree">``) has ``<``, ``>`` and ``&`` written as JSON escapes, so a ``</script>`` or
``<!--`` inside a response stays text.

>>> from prm_fire.problems import load_builtin
>>> from prm_fire.tree import add_response, new_tree
>>> tree = new_tree(load_builtin()[0])
>>> _ = add_response(tree, "x = 1\\n</script><b>bold</b>", origin="given")
>>> page = render_html(tree)
>>> page.startswith("<!DOCTYPE html>"), "<b>bold</b>" in page, "&lt;b&gt;bold&lt;/b&gt;" in page
(True, False, True)
>>> tree_from_json(embedded_tree_json(page)).nodes["r0"]["data"].text.endswith("<b>bold</b>")
True
"""

from __future__ import annotations

import math
import re
from collections import Counter
from html import escape
from pathlib import Path

import networkx as nx

from prm_fire.atomic import write_atomic
from prm_fire.steps import split_steps
from prm_fire.tree import (
    BranchNode,
    PrefixNode,
    PrefixSummary,
    ResponseNode,
    summarize,
    tree_from_json,
    tree_to_json,
)

METHOD_ORDER = ("fire", "regular")
_VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\\r"}
_DATA_ID = "prm-fire-tree"


def visible_token(token: str) -> str:
    """A token with its whitespace made visible: space ``␣``, newline ``⏎``, tab ``⇥``, CR ``\\r``.

    >>> visible_token(" The"), visible_token("\\n\\n"), visible_token("")
    ('␣The', '⏎⏎', '∅')
    """
    return "".join(_VISIBLE.get(c, c) for c in token) or "\u2205"


def pass_ks(n: int) -> tuple[int, ...]:
    """The k of the pass@k shown for n branches: 1, 2, 5, 10, 20, 50, ... up to n, and n itself.

    >>> pass_ks(4), pass_ks(10), pass_ks(0)
    ((1, 2, 4), (1, 2, 5, 10), ())
    """
    ks: set[int] = {n} if n else set()
    scale = 1
    while scale <= n:
        ks.update(k for k in (scale, 2 * scale, 5 * scale) if k <= n)
        scale *= 10
    return tuple(sorted(ks))


def safe_json_for_script(text: str) -> str:
    """JSON text made safe inside ``<script>``: ``<``, ``>``, ``&``, U+2028/9 as ``\\u`` escapes.

    The result parses to the same value (these characters only occur inside JSON strings).

    >>> safe_json_for_script('{"t": "</script><!--"}')
    '{"t": "\\\\u003c/script\\\\u003e\\\\u003c!--"}'
    """
    for char in "&<>\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def embedded_tree_json(page: str) -> str:
    """The tree JSON that :func:`render_html` embedded in ``page`` (read back with ``tree_from_json``)."""
    match = re.search(rf'<script type="application/json" id="{_DATA_ID}">(.*?)</script>', page, re.S)
    if match is None:
        raise ValueError(f"page has no <script id={_DATA_ID!r}> holding a tree")
    return match.group(1)


def score_colour(score: float | None) -> str:
    """Background of a step: red (0) through yellow to green (1); neutral grey without a score.

    >>> score_colour(0.0), score_colour(1.0), score_colour(None)
    ('hsl(0, 75%, 86%)', 'hsl(120, 75%, 86%)', '#eef0f3')
    """
    if score is None or math.isnan(score):
        return "#eef0f3"
    return f"hsl({round(120 * min(max(score, 0.0), 1.0))}, 75%, 86%)"


def _attr(text: str) -> str:
    """An attribute value: escaped, with CR as a character reference (a raw CR would become LF)."""
    return escape(text).replace("\r", "&#13;")


def _mark(correct: bool | None) -> str:
    if correct is None:
        return '<span class="mark ungraded" title="not graded">?</span>'
    if correct:
        return '<span class="mark ok" title="correct">\u2713</span>'
    return '<span class="mark bad" title="incorrect">\u2717</span>'


def _answer(answer: str | None) -> str:
    if answer is None:
        return '<span class="answer none">no answer</span>'
    return f'<span class="answer">{escape(answer)}</span>'


def _steps_html(record: ResponseNode, kept: int | None = None) -> str:
    """The response's steps, coloured by score; with ``kept``, the cut drawn after step ``kept``."""
    scores = record.step_scores or []
    rows = []
    for step in record.steps:
        if kept is not None and step.index == kept:
            rows.append('<li class="cut">\u2702 cut here: branches start at this step</li>')
        score = scores[step.index] if step.index < len(scores) else None
        classes = ["step"]
        if kept is not None:
            classes.append("kept" if step.index < kept else "dropped")
        tags = []
        if score is not None:
            tags.append(f'<span class="score">{score:.2f}</span>')
        if record.first_error_index == step.index:
            classes.append("first-error")
            tags.append('<span class="tag err">first error</span>')
        style = f' style="background:{score_colour(score)}"' if kept is None else ""
        score_attr = f' data-score="{score!r}"' if score is not None else ""
        rows.append(
            f'<li class="{" ".join(classes)}" data-step="{step.index}"{score_attr}{style}>'
            f'<span class="idx">{step.index + 1}</span><span class="text">{escape(step.text)}</span>'
            f'{"".join(tags)}</li>'
        )
    if kept is not None and kept >= len(record.steps):
        rows.append('<li class="cut">\u2702 cut here: branches start after the last step</li>')
    return f'<ol class="steps {"cut-steps" if kept is not None else "own-steps"}">{"".join(rows)}</ol>'


def _summary_line(s: PrefixSummary) -> str:
    passes = " ".join(f'<span class="kv">pass@{k} <b>{v:.3f}</b></span>' for k, v in s.pass_at.items())
    return (
        f'<span class="kv">n <b>{s.n}</b></span><span class="kv">correct <b>{s.correct}</b></span>{passes}'
        f'<span class="kv">#EA <b>{s.effective_answers}</b></span>'
        f'<span class="kv">first tokens <b>{s.distinct_first_tokens}</b></span>'
    )


def _counts(values: list[str]) -> str:
    return ", ".join(f"{escape(v)} \u00d7{c}" for v, c in Counter(values).most_common())


def _regrown_html(tree: nx.DiGraph, node_id: str, record: BranchNode, full_text: str) -> str:
    """A branch that a search scored or cut again: its full text's steps (coloured) and its own prefixes."""
    children = [c for c in tree.successors(node_id) if isinstance(tree.nodes[c]["data"], PrefixNode)]
    if record.step_scores is None and not children:
        return ""
    view = ResponseNode(text=full_text, origin="branch", step_mode=record.step_mode,
                        steps=split_steps(full_text, record.step_mode), grade=record.branch.grade, prm=record.prm,
                        step_scores=record.step_scores, step_reasons=record.step_reasons,
                        first_error_index=record.first_error_index)
    err = "none" if record.first_error_index is None else f"step {record.first_error_index + 1}"
    scored = f'<p class="prm">PRM {escape(record.prm)}: first error {escape(err)}</p>' if record.prm else ""
    return (f'<div class="regrown">{scored}{_steps_html(view)}'
            + "".join(_prefix_html(tree, c, view) for c in children) + "</div>")


def _branch_html(node_id: str, record: BranchNode, prefix_text: str, tree: nx.DiGraph | None = None) -> str:
    b = record.branch
    token = b.first_token
    rest = b.text[len(token):] if token and b.text.startswith(token) else None
    hot = (f'<mark class="first-token" data-token="{_attr(token)}" title="hot first token">'
           f'{escape(visible_token(token))}</mark>')
    preview = escape((rest if rest is not None else b.text)[:90].replace("\n", " \u23ce "))
    body_text = (hot + escape(rest)) if rest is not None else escape(b.text)
    finish = "EOS" if b.finish_reason == "stop" else "length limit"
    return (
        f'<details class="node branch" data-node="{escape(node_id)}" data-method="{escape(b.method)}" '
        f'data-index="{b.index}">'
        f'<summary><span class="bidx">#{b.index}</span>{hot}<span class="preview">{preview}</span>'
        f'<span class="result">{_answer(b.answer)}{_mark(b.grade.correct if b.grade else None)}</span></summary>'
        f'<div class="body"><pre class="continuation">'
        f'<span class="kept-text">{escape(prefix_text)}</span>{body_text}</pre>'
        f'<p class="meta">{len(b.token_ids)} tokens, ended by {finish}; first token id {b.first_token_id}, '
        f'log-prob {b.first_token_logprob:.2f} (drawn at {b.first_token_sampled_logprob:.2f}); '
        f'model {escape(record.model)}, seed {record.sampling.seed}</p>'
        f'{_regrown_html(tree, node_id, record, prefix_text + b.text) if tree is not None else ""}</div></details>'
    )


def _method_html(tree: nx.DiGraph, prefix_id: str, method: str, children: list[str], prefix_text: str) -> str:
    s = summarize(tree, prefix_id, method, ks=pass_ks(len(children)))
    records = [tree.nodes[c]["data"] for c in children]
    sampling = records[0].sampling
    how = f"T={sampling.temperature:g}"
    if sampling.fire is not None and method == "fire":
        how = f"first token T={sampling.fire.temperature:g} top-k {sampling.fire.top_k}, then {how}"
    tokens = _counts([visible_token(r.branch.first_token) for r in records])
    answers = _counts([r.branch.answer if r.branch.answer is not None else "no answer" for r in records])
    return (
        f'<section class="method {escape(method)}" data-method="{escape(method)}">'
        f'<h4>{escape(method)} <span class="how">{escape(how)}</span></h4>'
        f'<p class="summary-line" data-method="{escape(method)}">{_summary_line(s)}</p>'
        f'<p class="dist">first tokens: {tokens}<br>answers: {answers}</p>'
        + "".join(_branch_html(c, tree.nodes[c]["data"], prefix_text, tree) for c in children)
        + "</section>"
    )


def _prefix_html(tree: nx.DiGraph, prefix_id: str, response: ResponseNode) -> str:
    prefix = tree.nodes[prefix_id]["data"].prefix
    by_method: dict[str, list[str]] = {}
    for child in tree.successors(prefix_id):
        record = tree.nodes[child]["data"]
        if isinstance(record, BranchNode):
            by_method.setdefault(record.branch.method, []).append(child)
    order = sorted(by_method, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    for method in order:
        by_method[method].sort(key=lambda c: tree.nodes[c]["data"].branch.index)
    head_lines = "".join(
        f'<span class="line"><span class="m {escape(m)}">{escape(m)}</span>'
        f'{_summary_line(summarize(tree, prefix_id, m, ks=pass_ks(len(by_method[m]))))}</span>'
        for m in order
    )
    n_steps = len(response.steps)
    return (
        f'<details class="node prefix" data-node="{escape(prefix_id)}">'
        f'<summary><span class="kind">insertion point</span> <b>{escape(prefix.point)}</b> '
        f'<span class="cutinfo">keeps {prefix.kept_steps} of {n_steps} steps, '
        f'{sum(len(v) for v in by_method.values())} branches</span>{head_lines}</summary>'
        f'<div class="body"><div class="cutview">{_steps_html(response, kept=prefix.kept_steps)}</div>'
        + "".join(_method_html(tree, prefix_id, m, by_method[m], prefix.text) for m in order)
        + "</div></details>"
    )


def _response_html(tree: nx.DiGraph, response_id: str) -> str:
    r: ResponseNode = tree.nodes[response_id]["data"]
    verdict = ""
    if r.grade is not None:
        verdict = (f'<span class="result"><span class="lbl">final answer</span>{_answer(r.grade.predicted)}'
                   f'{_mark(r.grade.correct)}</span>')
    prm = ""
    if r.step_scores is not None:
        err = "none" if r.first_error_index is None else f"step {r.first_error_index + 1}"
        prm = f'<span class="prm">PRM {escape(r.prm or "?")}: first error {escape(err)}</span>'
    elif r.first_error_index is not None:
        prm = f'<span class="prm">first error: step {r.first_error_index + 1}</span>'
    prefixes = [c for c in tree.successors(response_id) if isinstance(tree.nodes[c]["data"], PrefixNode)]
    return (
        f'<details class="node response" data-node="{escape(response_id)}" open>'
        f'<summary><span class="kind">response</span> <b>{escape(response_id)}</b> '
        f'<span class="origin">{escape(r.origin)}</span> {prm}{verdict}</summary>'
        f'<div class="body">{_steps_html(r)}'
        + "".join(_prefix_html(tree, p, r) for p in prefixes)
        + "</div></details>"
    )


def _search_line(tree: nx.DiGraph) -> str:
    """One line on the search that grew the tree (its record in the graph attributes), if one did."""
    info = tree.graph.get("search")
    if not isinstance(info, dict):
        return ""
    config = info.get("config", {})
    found = info.get("first_correct") or {}
    outcome = (f'first correct branch <code>{escape(str(found.get("node_id")))}</code> after '
               f'{found.get("tokens")} tokens' if found else f'stopped: {escape(str(info.get("stop")))}')
    return (f'<p class="search-line">{escape(str(config.get("strategy", "search")))} '
            f'({escape(str(info.get("scorer")))} scorer, cut {escape(str(config.get("cut")))}, '
            f'{escape(str(config.get("sampling", {}).get("method")))}, budget {config.get("budget")} tokens): '
            f'{outcome}; {info.get("tokens_spent")} tokens spent in {len(info.get("rounds", []))} rounds, '
            f'depth {info.get("depth")}</p>')


def render_html(tree: nx.DiGraph, *, title: str | None = None) -> str:
    """The whole page for ``tree``: one HTML string, CSS and JS inline, nothing fetched."""
    if "problem" not in tree:
        raise ValueError("tree has no 'problem' root node")
    problem = tree.nodes["problem"]["data"].problem
    title = title or f"prm-fire tree: {problem.id}"
    scale = "".join(f'<i style="background:{score_colour(v)}">{t}</i>' for v, t in ((0, "0"), (0.5, ".5"), (1, "1")))
    responses = [c for c in tree.successors("problem") if isinstance(tree.nodes[c]["data"], ResponseNode)]
    gold = escape(problem.answer) if problem.answer is not None else '<span class="answer none">unknown</span>'
    level = f"level {problem.level}" if problem.level is not None else None
    meta = " \u00b7 ".join(escape(str(v)) for v in (problem.source, problem.subject, level) if v)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{escape(title)}</h1>
<div class="toolbar"><button type="button" id="expand-all">expand all</button>
<button type="button" id="collapse-all">collapse all</button>
<span class="legend">PRM score <span class="scale">{scale}</span>
<span class="step first-error legend-err">first error</span> <mark class="first-token">hot first token</mark>
\u2423 space \u23ce newline</span></div></header>
<section class="node problem" data-node="problem">
<h2><span class="kind">problem</span> {escape(problem.id)} <span class="origin">{meta}</span></h2>
<pre class="question">{escape(problem.question)}</pre>
<p class="gold">gold answer: <b>{gold}</b></p>{_search_line(tree)}</section>
<main>{"".join(_response_html(tree, r) for r in responses) or '<p class="empty">no responses in this tree</p>'}</main>
<script type="application/json" id="{_DATA_ID}">{safe_json_for_script(tree_to_json(tree))}</script>
<script>{_JS}</script>
</body></html>
"""


def write_html(tree: nx.DiGraph, path: str | Path, *, title: str | None = None) -> Path:
    """Write :func:`render_html` of ``tree`` to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render_html(tree, title=title))
    return path


_JS = """
function expandOnHash() {
  if (location.hash === '#expand-all') document.querySelectorAll('details').forEach(function (d) { d.open = true; });
}
expandOnHash();
window.addEventListener('hashchange', expandOnHash);
document.getElementById('expand-all').addEventListener('click', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
});
document.getElementById('collapse-all').addEventListener('click', function () {
  document.querySelectorAll('details.prefix, details.branch').forEach(function (d) { d.open = false; });
});
"""

_CSS = """
:root { --ok: #1a7f37; --bad: #c62828; --muted: #667085; --line: #d0d5dd; --fire: #d9480f; --regular: #1c64b9; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2939;
       margin: 0 auto; padding: 16px 24px 40px; max-width: 1180px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 0 0 6px; }
h4 { margin: 10px 0 2px; font-size: 15px; }
pre { font: 13.5px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre-wrap;
      word-break: break-word; margin: 0; }
header { border-bottom: 1px solid var(--line); padding-bottom: 8px; margin-bottom: 12px; }
.toolbar { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; font-size: 13px; color: var(--muted); }
.toolbar button { font: inherit; padding: 2px 10px; border: 1px solid var(--line); border-radius: 6px; background: #f9fafb; cursor: pointer; }
.legend { display: inline-flex; gap: 10px; align-items: center; margin-left: 12px; flex-wrap: wrap; }
.scale i { font-style: normal; padding: 0 8px; border: 1px solid var(--line); }
.legend-err { list-style: none; padding: 0 6px; border-radius: 4px; }
.kind { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); font-weight: 600; }
.origin, .cutinfo, .how, .prm { color: var(--muted); font-size: 13px; font-weight: normal; }
.problem { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #f8fafc; margin-bottom: 14px; }
.question { font: inherit; white-space: pre-wrap; }
.gold { margin: 6px 0 0; }
details.node { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; background: #fff; }
details.node > summary { cursor: pointer; padding: 6px 10px; list-style-position: outside; margin-left: 14px; }
details.node > .body { padding: 4px 12px 10px 12px; }
details.response { border-left: 4px solid #475467; }
details.prefix { border-left: 4px solid #7a5af8; margin-left: 12px; background: #fcfcfd; }
details.prefix > summary .line { display: block; font-size: 13px; margin-top: 2px; }
details.branch { margin: 4px 0 4px 12px; border-radius: 6px; }
details.branch > summary { display: flex; align-items: baseline; gap: 8px; padding: 3px 8px; margin-left: 0; }
details.branch > summary::before { content: "\\25B8"; color: var(--muted); }
details.branch[open] > summary::before { content: "\\25BE"; }
details.branch > summary::-webkit-details-marker { display: none; }
.bidx { color: var(--muted); font-size: 12px; min-width: 2.2em; }
.preview { flex: 1; color: #475467; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
           font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.result { margin-left: auto; display: inline-flex; gap: 6px; align-items: baseline; white-space: nowrap; padding-left: 10px; }
summary .result { float: none; }
.answer { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; background: #f2f4f7;
          padding: 0 6px; border-radius: 4px; }
.lbl { color: var(--muted); font-size: 13px; }
details.response > summary .result { margin-left: 14px; }
.answer.none { color: var(--muted); font-style: italic; background: none; font-family: inherit; }
.mark { font-weight: 700; font-size: 16px; }
.mark.ok { color: var(--ok); } .mark.bad { color: var(--bad); } .mark.ungraded { color: var(--muted); }
mark.first-token { background: #ffe066; color: #5c3c00; border: 1px solid #e0a800; border-radius: 4px; padding: 0 3px;
                   font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; white-space: pre; font-weight: 600; }
.fire mark.first-token { background: #ffd8a8; border-color: var(--fire); }
.steps { list-style: none; padding: 0; margin: 6px 0; }
.step { display: flex; gap: 8px; align-items: baseline; padding: 2px 8px; margin: 2px 0; border-radius: 4px;
        border-left: 3px solid transparent; }
.step .idx { color: var(--muted); font-size: 12px; min-width: 1.6em; text-align: right; }
.step .text { flex: 1; white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
.step .score { font-size: 12px; color: #344054; font-variant-numeric: tabular-nums; }
.step.first-error { outline: 2px solid var(--bad); border-left-color: var(--bad); }
.tag.err { font-size: 11px; color: #fff; background: var(--bad); border-radius: 3px; padding: 0 5px; white-space: nowrap; }
.step.kept { background: #ecfdf3; border-left-color: var(--ok); }
.step.dropped { background: #f9fafb; color: #98a2b3; }
.step.dropped .text { text-decoration: line-through; text-decoration-color: #d0d5dd; }
.cut { color: #7a5af8; font-size: 12px; font-weight: 600; border-top: 2px dashed #7a5af8; margin: 4px 0; padding-top: 2px; }
.cutview { border: 1px dashed var(--line); border-radius: 6px; padding: 2px 6px; margin: 4px 0 8px; }
section.method { border-top: 1px solid var(--line); margin-top: 8px; padding-top: 2px; }
section.method h4 { color: var(--regular); } section.method.fire h4 { color: var(--fire); }
.m { display: inline-block; min-width: 5em; font-weight: 600; }
.m.fire { color: var(--fire); } .m.regular { color: var(--regular); }
.kv { margin-right: 12px; white-space: nowrap; font-size: 13px; }
.kv b { font-variant-numeric: tabular-nums; }
.summary-line { margin: 2px 0; }
.dist { margin: 2px 0 6px; font-size: 12.5px; color: #475467; }
.continuation { background: #f8fafc; border-radius: 6px; padding: 6px 8px; }
.kept-text { color: #98a2b3; }
.meta { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.empty { color: var(--muted); }
.regrown { border-left: 2px dotted #7a5af8; padding-left: 8px; margin-top: 6px; }
.search-line { margin: 6px 0 0; font-size: 13px; color: #344054; }
"""
