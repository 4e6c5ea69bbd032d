"""report.html is one self-contained page: the summary tables and every figure of the report,
embedded as base64 PNG, with no script, link or any other file to fetch."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

from raysweep.report.build import write_report
from tests.test_analysis import make_sweep
from tests.test_report_figures import ofat_sweep


class PageParser(HTMLParser):
    """Every start tag with its attributes, the text of headings and table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.cells: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3", "td", "th"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in in ("h1", "h2", "h3"):
            self.headings.append(data)
        elif self._in in ("td", "th"):
            self.cells.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_page_embeds_every_figure_and_nothing_else(tmp_path: Path) -> None:
    report = write_report(make_sweep(seeds=(0, 1)), tmp_path)
    page = parse(report.page)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    embedded = set()
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,"), src[:40]
        embedded.add(base64.b64decode(src.split(",", 1)[1]))
        assert attrs.get("alt")
    pngs = [p for p in report.files if p.suffix == ".png"]
    assert len(images) == len(pngs) >= 8
    assert embedded == {p.read_bytes() for p in pngs}  # every figure, byte for byte
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base", "video", "audio"}
    for tag, attrs in page.tags:  # nothing to fetch: only in-page anchors
        if tag == "a":
            assert (attrs.get("href") or "").startswith("#")
        assert not any(k.startswith("on") for k in attrs), tag
    text = report.page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "url(" not in text


def test_page_holds_the_tables_and_the_sections(tmp_path: Path) -> None:
    report = write_report(make_sweep(seeds=(0, 1)), tmp_path)
    page = parse(report.page)
    assert page.headings[:2] == ["hand-made", "Summary"]
    assert "Mean ± std over seeds" in page.headings
    assert "Overview" in page.headings and "Study main" in page.headings
    for trial in report.table["trial_id"]:
        assert trial in page.cells
    assert {"best_test_acc", "best_train_acc", "best_train_acc_epoch", "duration_s"} <= set(
        page.cells
    )
    assert "best_test_acc (mean ± std)" in page.cells


def test_page_per_study_sections_and_escaping(tmp_path: Path) -> None:
    sweep = ofat_sweep()
    sweep.name = "<b>ofat</b> & co"
    report = write_report(sweep, tmp_path)
    text = report.page.read_text(encoding="utf-8")
    assert "<b>ofat</b>" not in text and "&lt;b&gt;ofat&lt;/b&gt; &amp; co" in text
    page = parse(report.page)
    assert [h for h in page.headings if h.startswith("Study ")] == ["Study main", "Study extra"]
    captions = text.count("<figcaption>")
    assert captions == len([p for p in report.files if p.suffix == ".png"])
    assert "per_class__main.png" in text and "curves__main__model.activation.png" in text


def test_study_and_factor_tables_as_seed_004_gives_them(tmp_path: Path) -> None:
    """Under each factor's figure, the table of its trials (the base and that factor's):
    best train and test accuracy with their epochs (seed 004's 表 2-8); summary.md too."""
    report = write_report(ofat_sweep(), tmp_path)
    text = report.page.read_text(encoding="utf-8")
    after = text.split("curves__main__train.optimizer.weight_decay.png", 1)[1]
    table = after.split("<figure>", 1)[0]
    parser = PageParser()
    parser.feed(table)
    assert [c for c in parser.cells if c.startswith("t0")] == ["t002", "t001", "t000"]
    assert "best_train_acc_epoch" in parser.cells and "train.optimizer.weight_decay" in parser.cells
    assert "model.activation" not in parser.cells  # the same in all three: not shown
    md = (tmp_path / "summary.md").read_text()
    section = md.split("## Study main, train.optimizer.weight_decay", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0].strip("| ") for line in section.splitlines() if "| t0" in line]
    assert rows == ["t002", "t001", "t000"]
    assert "## Study main\n" in md and "## Study extra\n" in md


def test_a_study_whose_trials_all_failed_shows_its_table(tmp_path: Path) -> None:
    import pandas as pd

    sweep = make_sweep()
    failed = {"trial_id": "t009", "name": "broken", "status": "failed", "studies": "broken"}
    sweep.trials = pd.concat([sweep.trials, pd.DataFrame([failed])], ignore_index=True)
    report = write_report(sweep, tmp_path)
    assert not any(key.endswith(":broken") for key in report.plots)  # nothing to draw
    page = parse(report.page)
    assert "Study broken" in page.headings
    text = report.page.read_text(encoding="utf-8")
    assert "t009" in text.split("Study broken", 2)[-1]
