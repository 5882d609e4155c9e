"""One place for each measured figure: docs/benchmarks.md, with the command that made it.

Every other page (README.md and docs/) may quote a measured figure only as benchmarks.md states it, and only in a
paragraph that links to benchmarks.md, so a figure cannot drift from its measurement or lose the way back to it.
Four different per-call overheads for the same loggers, on four pages, is what this prevents.

A measured figure is a number with a unit of time per call or step (``µs``, ``us``, ``ms``), a ratio (``70x``),
a percentage or a rate (``scalars/s``), alone or as a range (``5 to 10 µs``, ``6.3-9.6 µs``). Seconds are
mostly settings (``waits up to 10 s``); a number of seconds counts as measured when it is approximate (``about
1-2 s``, ``under 0.5 s``), a range, or given to two decimals (``0.63 s``). A code block that shows what a
command printed once (not a measurement anyone should quote) carries ``<!-- docs-figures: sample output -->`` on
the line before its fence.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "docs" / "benchmarks.md"

_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_RANGE = rf"(?:(?P<low>{_NUMBER})\s?(?:-|\u2013|to)\s?)?(?P<number>{_NUMBER})"  # 5-10, 5\u201310, 5 to 10
_UNIT = (
    r"(?:\s?(?P<time>µs|us|ms)(?:/step)?|(?P<ratio>x)|\s?(?P<percent>%)"
    r"|\s?(?P<rate>[kM]?\s?(?:scalars|rows|values|points|calls)/s)|\s(?P<seconds>s))"
)
FIGURE = re.compile(rf"(?<![\w.,+-]){_RANGE}{_UNIT}(?![\w/])")
APPROXIMATE = re.compile(r"(?:about|under|over|around|roughly|nearly|~)\s*$")
FENCE = re.compile(r"^\s*```")
SAMPLE = "<!-- docs-figures: sample output -->"
LINK = re.compile(r"\]\((?:\.\./|\./)?(?:docs/)?benchmarks\.md(?:#[\w-]*)?\)")


def _normal(match: re.Match[str]) -> str:
    """The figure as compared: no thousands separators, ``a-b`` ranges, ``µs``, no space before the unit."""
    unit = (match["time"] or match["ratio"] or match["percent"] or match["rate"] or match["seconds"]).replace(" ", "")
    unit = "µs" if unit == "us" else unit
    numbers = [number.replace(",", "") for number in (match["low"], match["number"]) if number]
    return "-".join(numbers) + unit


def _is_measured(match: re.Match[str], line: str) -> bool:
    if not match["seconds"]:
        return True
    before = line[: match.start()]
    decimals = match["number"].partition(".")[2]
    return bool(match["low"] or APPROXIMATE.search(before) or len(decimals) >= 2)


def _paragraphs(path: Path) -> list[tuple[int, str]]:
    """``(first line, text)`` of each paragraph, table or code block, leaving out sample-output blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str]] = []
    start, block, fenced, sample = 0, [], False, False
    for number, line in enumerate(lines, 1):
        if FENCE.match(line):
            if not fenced:
                if block:
                    found.append((start, "\n".join(block)))
                sample = number > 1 and lines[number - 2].strip() == SAMPLE
                start, block, fenced = number, [line], True
            else:
                if not sample:
                    found.append((start, "\n".join([*block, line])))
                block, fenced = [], False
            continue
        if fenced:
            block.append(line)
        elif line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            found.append((start, "\n".join(block)))
            block = []
    if block and not (fenced and sample):
        found.append((start, "\n".join(block)))
    return found


def measured_figures(text: str) -> list[str]:
    """The measured figures of ``text``, normalised for comparing."""
    lines = text.splitlines()
    return [_normal(match) for line in lines for match in FIGURE.finditer(line) if _is_measured(match, line)]


def quoted_figures(path: Path) -> list[tuple[int, str, str, bool]]:
    """``(line, figure as written, normalised, paragraph links to benchmarks.md)`` for each measured figure."""
    found = []
    for start, paragraph in _paragraphs(path):
        linked = bool(LINK.search(paragraph))
        for offset, line in enumerate(paragraph.splitlines()):
            for match in FIGURE.finditer(line):
                if _is_measured(match, line):
                    found.append((start + offset, match.group(), _normal(match), linked))
    return found


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(path for path in (ROOT / "docs").rglob("*.md") if path != BENCHMARKS)]


def problems(paths: list[Path], benchmarks: set[str]) -> list[str]:
    found = []
    for path in paths:
        page = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        for line, written, normal, linked in quoted_figures(path):
            if normal not in benchmarks:
                found.append(f"{page}:{line}: {written!r} is not a figure of docs/benchmarks.md")
            elif not linked:
                found.append(f"{page}:{line}: {written!r} is quoted without a link to docs/benchmarks.md")
    return found


def test_every_figure_outside_benchmarks_is_one_of_its_figures_with_a_link_to_it() -> None:
    benchmarks = set(measured_figures(BENCHMARKS.read_text(encoding="utf-8")))
    assert not problems(pages(), benchmarks), "\n".join(problems(pages(), benchmarks))


def test_the_check_finds_figures_that_disagree(tmp_path: Path) -> None:
    # The four overheads once quoted for the same loggers: only benchmarks.md's own passes, and only linked.
    page = tmp_path / "page.md"
    page.write_text(
        "A call costs 5 to 10 µs instead of 110 to 720 µs.\n\n"
        "About 5 to 16 µs (see [Benchmarks](benchmarks.md)).\n\n"
        "The client costs about 30 us per value ([numbers](../benchmarks.md#remote-backends)).\n\n"
        "It costs 6.3 µs, 1,057x less.\n\n"
        "It costs 6.3 µs (see [Benchmarks](benchmarks.md#results)); waits up to 10 s, finishes in about 1-2 s.\n\n"
        "| table | 0.63 s |\n\n"
        f"{SAMPLE}\n```text\nTrained in 4.07 s: accuracy 96.4%\n```\n",
        encoding="utf-8",
    )
    benchmarks = set(measured_figures("| W&B | 6.3 µs | 1,057x |\n"))
    assert benchmarks == {"6.3µs", "1057x"}
    lines = [problem.split(": ", 1)[1] for problem in problems([page], benchmarks)]
    assert [line.partition(" is ")[0] for line in lines] == [
        "'5 to 10 µs'",
        "'110 to 720 µs'",
        "'5 to 16 µs'",
        "'30 us'",
        "'6.3 µs'",  # equal, but with no link
        "'1,057x'",
        "'1-2 s'",
        "'0.63 s'",
    ]
