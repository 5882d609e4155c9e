"""Which points of a run written in turns by several processes stay (``tracklight.runs._superseded``)."""

from __future__ import annotations

import numpy as np

from tracklight.runs._run import Points
from tracklight.runs._superseded import keep, merge, segments_by_time


def test_a_later_takeover_supersedes_every_earlier_process_after_its_step() -> None:
    steps = np.array([0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 4, 5])
    owners = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    # process 1 took over at step 1, process 2 at step 3
    kept = keep(steps, owners, [1, 3])
    assert steps[kept].tolist() == [0, 1, 2, 3, 4, 5]
    assert owners[kept].tolist() == [0, 0, 1, 1, 2, 2]


def test_a_takeover_before_anything_was_logged_supersedes_everything_earlier() -> None:
    assert keep(np.array([0, 1, 0]), np.array([0, 0, 1]), [None]).tolist() == [False, False, True]
    assert keep(np.array([0, 1]), np.array([0, 0]), []).tolist() == [True, True]


def test_merge_and_segments_by_time() -> None:
    first = {"loss": Points.of([0, 1, 2], [0.0, 1.0, 2.0]), "only_first": Points.of([0], [7.0])}
    second = {"loss": Points.of([2, 3], [20.0, 30.0])}
    merged = merge([first, second], [1])
    assert merged["loss"].step.tolist() == [0, 1, 2, 3] and merged["loss"].value.tolist() == [0.0, 1.0, 20.0, 30.0]
    assert merged["only_first"].value.tolist() == [7.0]
    assert segments_by_time(np.array([1.0, 2.0, 3.0, 4.0]), [2.0, 3.5]).tolist() == [0, 1, 1, 2]
