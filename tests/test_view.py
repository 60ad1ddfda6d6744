"""HTML view of a tree (no browser): self-contained, escaped, and its counts and numbers match the tree.

The page is parsed with the standard library's HTML parser into a small element tree, so the
assertions read what a browser would build, not substrings. The browser test is
tests/test_view_browser.py.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from prm_fire.branching import BranchSet, GradedBranch
from prm_app.cli import main
from prm_fire.grader import grade
from prm_fire.metrics import pass_at_k
from prm_fire.prefixes import build_prefix
from prm_fire.problems import load_builtin
from prm_fire.sampling import SamplingConfig
from prm_fire.tree import add_branch_set, add_response, branches_of, new_tree, save_tree, summarize, tree_from_json, trees_equal
from prm_fire.view import embedded_tree_json, pass_ks, render_html, score_colour, visible_token

PROBLEM = load_builtin()[0]  # gold answer 8
EVIL = "</script><script>alert(1)</script><!-- & \"q\" 'a'"
VOID = {"meta", "br", "hr", "img", "input", "link"}


class El:
    """One parsed element: tag, attributes, children, and its text (children's included)."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs, self.children, self.parts = tag, attrs, [], []

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[El]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and (cls is None or cls in child.classes) and all(
                child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found.extend(child.find_all(tag, cls, **attrs))
        return found

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> El:
        found = self.find_all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one <{tag} class={cls} {attrs}>, found {len(found)}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = El("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        el = El(tag, dict(attrs))
        self.stack[-1].children.append(el)
        self.stack[-1].parts.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse(page: str) -> El:
    builder = _Builder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def _branch_set(prefix, method: str, pieces: list[tuple[str, str]]) -> BranchSet:
    """Graded branch records; each piece is (first token, rest of the text)."""
    branches = []
    for i, (token, rest) in enumerate(pieces):
        text = token + rest
        verdict = grade(prefix.text + text, PROBLEM.answer)
        branches.append(GradedBranch(
            index=i, method=method, token_ids=[1000 + len(token), 7, 8], text=text, first_token_id=1000 + len(token),
            first_token=token, first_token_logprob=-1.5, first_token_sampled_logprob=-2.7, finish_reason="stop",
            answer=verdict.predicted, grade=verdict))
    return BranchSet(problem_id=PROBLEM.id, model="test-records", prefix=prefix,
                     sampling=SamplingConfig(method=method), branches=branches)


@pytest.fixture
def tree():
    tree = new_tree(PROBLEM)
    r0 = add_response(tree, PROBLEM.solution, origin="dataset", grade=grade(PROBLEM.solution, PROBLEM.answer),
                      prm="label", step_scores=[0.9, 0.75, 0.2, 0.1], first_error_index=2)
    prefix = build_prefix(PROBLEM.solution, "line3", problem_id=PROBLEM.id)
    add_branch_set(tree, r0, _branch_set(prefix, "fire", [
        (" So", " 13 - 5 = 8.\n\\boxed{8}"), ("\n", "Thus \\boxed{8}"), ("I", " get \\boxed{9}"), ("No", " answer.")]))
    add_branch_set(tree, r0, _branch_set(prefix, "regular", [("After", " that \\boxed{8}"), ("After", " all \\boxed{13}")]))
    evil = f"We start {EVIL}.\nSo 4 * 9 = 36.\nThe answer is \\boxed{{8}}"
    r1 = add_response(tree, evil, origin="given")
    evil_prefix = build_prefix(evil, "line2")
    add_branch_set(tree, r1, _branch_set(evil_prefix, "fire", [("<", "/script> \\boxed{8}")]))
    return tree


def test_page_is_self_contained_and_parses_to_balanced_elements(tree):
    page = render_html(tree)
    doc = parse(page)
    assert [s.attrs.get("type") for s in doc.find_all("script")] == ["application/json", None]
    assert len(doc.find_all("style")) == 1
    assert not doc.find_all("link") and not doc.find_all("img")
    assert "http://" not in page and "https://" not in page and " src=" not in page


def test_script_and_comment_in_texts_stay_text(tree):
    page = render_html(tree)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<!--" not in page
    doc = parse(page)
    step = doc.one(cls="response", data_node="r1").one("ol", cls="own-steps").find_all("li", cls="step")[0]
    assert EVIL in step.text  # the browser shows the characters themselves
    branch = doc.one(cls="branch", data_node="r1/line2/fire/0")
    assert branch.one("summary").one("mark", cls="first-token").attrs["data-token"] == "<"
    assert "</script> \\boxed{8}" in branch.one("pre", cls="continuation").text
    # the embedded JSON is the whole tree, read back equal
    assert trees_equal(tree_from_json(embedded_tree_json(page)), tree)


def test_branch_count_and_first_tokens_per_prefix_and_method(tree):
    doc = parse(render_html(tree))
    for prefix_id in ("r0/line3", "r1/line2"):
        node = doc.one("details", cls="prefix", data_node=prefix_id)
        assert len(node.find_all("details", cls="branch")) == tree.out_degree(prefix_id)
        for method in ("fire", "regular"):
            expected = branches_of(tree, prefix_id, method)
            shown = node.find_all("details", cls="branch", data_method=method)
            assert [int(b.attrs["data-index"]) for b in shown] == [b.index for b in expected]
            marks = [b.one("summary").one("mark", cls="first-token") for b in shown]
            assert [m.attrs["data-token"] for m in marks] == [b.first_token for b in expected]
            assert [m.text for m in marks] == [visible_token(b.first_token) for b in expected]
    marks = doc.one(cls="branch", data_node="r0/line3/fire/1").find_all("mark", cls="first-token")
    assert {m.text for m in marks} == {"\u23ce"}  # a newline token is shown as ⏎, in summary and body


def test_summary_line_numbers_equal_summarize(tree):
    doc = parse(render_html(tree))
    section = doc.one("details", cls="prefix", data_node="r0/line3")
    for method in ("fire", "regular"):
        s = summarize(tree, "r0/line3", method, ks=pass_ks(len(branches_of(tree, "r0/line3", method))))
        line = section.one("p", cls="summary-line", data_method=method)
        values = {kv.text.rsplit(" ", 1)[0]: kv.text.rsplit(" ", 1)[1] for kv in line.find_all("span", cls="kv")}
        expected = {"n": str(s.n), "correct": str(s.correct), "#EA": str(s.effective_answers),
                    "first tokens": str(s.distinct_first_tokens)}
        expected |= {f"pass@{k}": f"{pass_at_k(s.n, s.correct, k):.3f}" for k in pass_ks(s.n)}
        assert values == expected
    fire = summarize(tree, "r0/line3", "fire", ks=pass_ks(4))
    assert (fire.n, fire.correct, sorted(fire.pass_at)) == (4, 2, [1, 2, 4])


def test_steps_coloured_by_score_first_error_marked_neutral_without_scores(tree):
    doc = parse(render_html(tree))
    record = tree.nodes["r0"]["data"]
    steps = doc.one(cls="response", data_node="r0").one("ol", cls="own-steps").find_all("li", cls="step")
    assert [float(s.attrs["data-score"]) for s in steps] == record.step_scores
    assert [s.attrs["style"] for s in steps] == [f"background:{score_colour(v)}" for v in record.step_scores]
    assert [int(s.attrs["data-step"]) for s in steps if "first-error" in s.classes] == [record.first_error_index]
    plain = doc.one(cls="response", data_node="r1").one("ol", cls="own-steps").find_all("li", cls="step")
    assert all("data-score" not in s.attrs and s.attrs["style"] == f"background:{score_colour(None)}" for s in plain)


def test_prefix_node_shows_kept_and_dropped_steps(tree):
    doc = parse(render_html(tree))
    prefix = tree.nodes["r0/line3"]["data"].prefix
    cut = doc.one("details", cls="prefix", data_node="r0/line3").one("div", cls="cutview")
    assert len(cut.find_all("li", cls="kept")) == prefix.kept_steps == 2
    assert len(cut.find_all("li", cls="dropped")) == len(tree.nodes["r0"]["data"].steps) - prefix.kept_steps
    kinds = [("cut" if "cut" in li.classes else "step") for li in cut.one("ol").children]
    assert kinds == ["step", "step", "cut", "step", "step"]


def test_cli_writes_the_html_page_beside_the_tree(tree, tmp_path, capsys):
    path = save_tree(tree, tmp_path / "tree.json")
    assert main(["view", str(path)]) == 0
    assert trees_equal(tree_from_json(embedded_tree_json((tmp_path / "tree.html").read_text())), tree)


def test_cli_writes_a_png_figure(tree, tmp_path):
    pytest.importorskip("matplotlib", reason="--format png needs matplotlib (extra 'view')")
    image_module = pytest.importorskip("PIL.Image", reason="reading the PNG back needs Pillow")
    path = save_tree(tree, tmp_path / "tree.json")
    assert main(["view", str(path), "-o", str(tmp_path / "fig.png")]) == 0  # format from the suffix
    with image_module.open(tmp_path / "fig.png") as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_cli_writes_dot_with_every_node_and_edge(tree, tmp_path):
    pydot = pytest.importorskip("pydot", reason="--format dot needs pydot (extra 'view')")
    path = save_tree(tree, tmp_path / "tree.json")
    assert main(["view", str(path), "--format", "dot", "-o", str(tmp_path / "t.dot")]) == 0
    (graph,) = pydot.graph_from_dot_file(str(tmp_path / "t.dot"))
    assert len(graph.get_nodes()) == tree.number_of_nodes() and len(graph.get_edges()) == tree.number_of_edges()


def test_cli_names_a_missing_or_bad_tree(tmp_path, capsys):
    assert main(["view", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": []}')
    assert main(["view", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "bad.json: not a prm-fire tree" in err


def test_an_output_is_replaced_whole_or_left_as_it_was(tmp_path):
    """A writer that fails midway (a full disk) leaves the old file and no temporary one."""
    from prm_fire.atomic import replacing, write_atomic

    page = tmp_path / "tree.html"
    write_atomic(page, "old page")
    with pytest.raises(OSError, match="No space left"):
        with replacing(page) as tmp:
            tmp.write_text("half a pa")
            raise OSError(28, "No space left on device")
    assert page.read_text() == "old page" and [p.name for p in tmp_path.iterdir()] == ["tree.html"]
