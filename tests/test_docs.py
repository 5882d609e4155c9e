"""Every Python block of README.md and docs/ runs, so the documentation cannot drift from the code.

Pages are found anew at each run (a new page in docs/ is picked up by itself); each ```` ```python ````
block is one test, named ``<page>:<line>``. A block that is a fragment gets a named setup from
``tests/_docs_setups.py`` through an HTML comment on the line before its fence (``<!-- docs-test:
setup=fit -->``, ``<!-- docs-test: continue -->``); that module says how. Nothing is skipped: a block
that cannot run is a failure to fix in the page or in the setups.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from _docs_setups import SETUPS
from _offline import offline_backends, runs_left_open

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*$")
OPTIONS = re.compile(r"^\s*<!--\s*docs-test:(?P<options>[^>]*?)-->\s*$")
PYTHON = {"python", "py", "python3"}


@dataclass
class Block:
    page: str
    line: int
    code: str
    setups: list[str] = field(default_factory=list)
    continues: Block | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def chain(self) -> list[Block]:
        """This block and the blocks it continues, first to last."""
        blocks = [self]
        while blocks[0].continues is not None:
            blocks.insert(0, blocks[0].continues)
        return blocks


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The Python blocks of one page, with the options of the ``docs-test`` comment before each."""
    page = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(
            (i for i in range(index + 1, len(lines)) if lines[i].strip() == "```"),
            len(lines),
        )
        if opening["lang"] in PYTHON:
            indent = len(opening["indent"])
            code = "\n".join(line[indent:] for line in lines[index + 1 : end])
            block = Block(page, index + 1, code)
            comment = OPTIONS.match(lines[index - 1]) if index else None
            for option in comment["options"].split() if comment else []:
                if option == "continue":
                    if not found:
                        raise ValueError(f"{block.id}: `continue` needs a Python block before it on the page")
                    block.continues = found[-1]
                elif option.startswith("setup="):
                    block.setups += option.removeprefix("setup=").split(",")
                else:
                    raise ValueError(f"{block.id}: unknown docs-test option {option!r}")
            found.append(block)
        index = end + 1
    return found


BLOCKS = [block for path in pages() for block in blocks_of(path)]


def test_pages_have_python_blocks_and_known_setups() -> None:
    assert len(BLOCKS) >= 20, "the collector found fewer blocks than the pages hold"
    for block in BLOCKS:
        unknown = set(block.setups) - set(SETUPS)
        assert not unknown, f"{block.id}: no setup named {sorted(unknown)} in tests/_docs_setups.py"
        compile(block.code, block.id, "exec")  # a SyntaxError names the page and line


def test_the_reducer_speed_is_quoted_as_one_figure() -> None:
    # One figure, from benchmarks/selflog.py (docs/benchmarks.md, Results), wherever the speed is claimed.
    figures = {
        (path.relative_to(ROOT).as_posix(), figure)
        for path in pages()
        for figure in re.findall(r"about (\d+)x less\s+overhead", path.read_text(encoding="utf-8"))
    }
    assert len({figure for _, figure in figures}) == 1, sorted(figures)
    results = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    (figure,) = {figure for _, figure in figures}
    assert re.search(rf"`selflog\.py`.*\| about {figure}x ", results), "the Results table is the source of the figure"


@pytest.fixture
def docs_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A fresh directory, every backend offline, no network beyond this machine, short Trainers."""
    attempts = offline_backends(monkeypatch, tmp_path, loopback=True)
    end_runs = runs_left_open(monkeypatch)
    _short_trainers(monkeypatch)
    yield
    end_runs()
    assert attempts == [], "documentation examples must run offline in the tests"


def _short_trainers(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch import Trainer

    original = Trainer.__init__
    short = {
        "max_epochs": 2,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "limit_test_batches": 1,
        "log_every_n_steps": 1,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**short, **kwargs})

    monkeypatch.setattr(Trainer, "__init__", init)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
@pytest.mark.filterwarnings("ignore:CSVLogger cannot display")  # what the media pages show CSV doing
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")  # the CSV page's resume
@pytest.mark.filterwarnings("ignore:Info \\(NVML\\)")  # Neptune's hardware metrics, on a machine without a GPU
@pytest.mark.filterwarnings("ignore:.*were moved to .*superseded")  # the resume page's one warning, on purpose
def test_block_runs(block: Block, docs_env: None, tmp_path: Path) -> None:
    chain = block.chain()
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    checks = []
    with contextlib.ExitStack() as stack:
        for name in dict.fromkeys(setup for part in chain for setup in part.setups):
            names, check = stack.enter_context(SETUPS[name](tmp_path))
            namespace.update(names)
            if check is not None:
                checks.append(check)
        for part in chain:
            exec(compile(part.code, part.id, "exec"), namespace)
        for check in checks:
            check(namespace)
