"""``sync_dist`` with two real ``torch.distributed`` processes (gloo, CPU): uneven shards, every reduction,
sync on and off, mismatched keys; then the Lightning opt-in under a real DDP Trainer.

The reference is one process reducing all the data: the two-rank epoch values must equal it (the mean to
1e-9; it is exact in float64, where Lightning floors the total batch size and is off by about 5% here).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest
import torch.multiprocessing as mp

import _reducer_ddp as ddp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Run every scenario of ``_reducer_ddp`` on two gloo ranks once; each rank's results."""
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(ddp.worker, args=(2, str(out / "rendezvous"), str(out)), nprocs=2, start_method="spawn")
    results = [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]
    for rank, result in enumerate(results):
        assert "error" not in result, f"rank {rank} failed:\n{result.get('error')}"
    return results


def _all_batches(shards: dict[int, list[tuple[int, int]]]) -> list[tuple[int, int]]:
    return shards[0] + shards[1]


def _reference(shards: dict[int, list[tuple[int, int]]]) -> dict[str, float]:
    return ddp.run_epoch(_all_batches(shards), sync=False, on_step=False)["epoch"]


def test_two_rank_epoch_values_equal_one_process_over_all_samples(two_ranks: list[dict[str, Any]]) -> None:
    reference = _reference(ddp.SHARDS)
    exact_mean = math.fsum(ddp.SAMPLES) / len(ddp.SAMPLES)
    assert reference["t_mean"] == pytest.approx(exact_mean, rel=1e-12)
    for result in two_ranks:
        epoch = result["synced"]["epoch"]
        for reduction in ddp.REDUCTIONS:
            for prefix, suffix in (("t", "_epoch"), ("p", "")):
                key = f"{prefix}_{reduction}"
                assert epoch[key + suffix] == pytest.approx(reference[key], rel=1e-9, abs=1e-12), key
        assert abs(epoch["t_mean_epoch"] - exact_mean) <= 1e-9 * abs(exact_mean)
    assert two_ranks[0]["synced"]["calls"] == two_ranks[1]["synced"]["calls"]


def test_step_values_are_reduced_across_ranks_like_lightning(two_ranks: list[dict[str, Any]]) -> None:
    def batch_mean(start: int, stop: int) -> float:
        return math.fsum(ddp.SAMPLES[start:stop]) / (stop - start)

    for step, (first, second) in enumerate(zip(ddp.SHARDS[0], ddp.SHARDS[1], strict=True)):
        a, b = batch_mean(*first), batch_mean(*second)
        logged_step, metrics = two_ranks[0]["synced"]["calls"][step]
        assert logged_step == step
        assert metrics["t_mean_step"] == pytest.approx((a + b) / 2, rel=1e-12)  # unweighted, as Lightning
        assert metrics["t_sum_step"] == pytest.approx(a + b, rel=1e-12)
        assert metrics["t_max_step"] == pytest.approx(max(a, b), rel=1e-15)
        assert metrics["t_min_step"] == pytest.approx(min(a, b), rel=1e-15)


def test_without_sync_dist_each_rank_reduces_its_own_shard(two_ranks: list[dict[str, Any]]) -> None:
    for rank, result in enumerate(two_ranks):
        own = ddp.run_epoch(ddp.SHARDS[rank], sync=False, on_step=False)["epoch"]
        epoch = result["local"]["epoch"]
        assert epoch["t_mean_epoch"] == pytest.approx(own["t_mean"], rel=1e-12)
        assert epoch["p_sum"] == pytest.approx(own["p_sum"], rel=1e-12)
    assert two_ranks[0]["local"]["epoch"] != two_ranks[1]["local"]["epoch"]


def test_ranks_with_different_numbers_of_batches_sync_epoch_values(two_ranks: list[dict[str, Any]]) -> None:
    reference = _reference(ddp.SHORT_SHARDS)
    for result in two_ranks:
        for key, value in result["short"]["epoch"].items():
            assert value == pytest.approx(reference[key], rel=1e-9), key


def test_keys_that_differ_across_ranks_raise_on_every_rank_naming_them(two_ranks: list[dict[str, Any]]) -> None:
    for result in two_ranks:
        assert "rank 1 did not log only_on_rank0" in result["mismatch"]
        assert "Fix:" in result["mismatch"]
        assert "rank 0 did not log loss in validation_step (max)" in result["reduction_mismatch"]
        assert "rank 1 did not log loss in validation_step (mean)" in result["reduction_mismatch"]
        # the process group was left usable: a clean epoch after the errors gives the synced values
        synced = {key.removesuffix("_epoch"): value for key, value in result["synced"]["epoch"].items()}
        assert result["after"]["epoch"] == pytest.approx(synced, rel=1e-12)


def _ddp_trainer(tmp_path: Any, path: str) -> Any:
    import lightning.pytorch as pl

    from _reducer_ddp_lightning import JsonLinesLogger
    from tracklight.reducer import LightningReducer

    return pl.Trainer(
        strategy="ddp_spawn",
        accelerator="cpu",
        devices=2,
        max_epochs=1,
        logger=JsonLinesLogger(path),
        callbacks=[LightningReducer()],
        use_distributed_sampler=False,
        log_every_n_steps=2,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )


def test_lightning_ddp_trainer_with_the_opt_in_gives_the_exact_mean(tmp_path: Any) -> None:
    from _reducer_ddp_lightning import SHARDS, ShardModule

    path = str(tmp_path / "metrics.jsonl")
    trainer = _ddp_trainer(tmp_path, path)
    trainer.fit(ShardModule())
    with open(path) as fh:
        calls = [json.loads(line) for line in fh]
    validation = next(call["metrics"] for call in calls if "val_mean" in call["metrics"])
    train_epoch = next(call["metrics"] for call in calls if "train_mean_epoch" in call["metrics"])
    step = next(call for call in calls if "train_mean_step" in call["metrics"])

    exact = math.fsum(ddp.SAMPLES) / len(ddp.SAMPLES)
    assert abs(validation["val_mean"] - exact) <= 1e-9 * exact
    assert abs(train_epoch["train_mean_epoch"] - exact) <= 1e-9 * exact
    assert train_epoch["train_sum_epoch"] == pytest.approx(math.fsum(ddp.SAMPLES), rel=1e-12)
    assert validation["val_max"] == max(ddp.SAMPLES) and validation["val_min"] == min(ddp.SAMPLES)
    rank0 = [ddp.SAMPLES[i] for a, b in SHARDS[0] for i in range(a, b)]
    assert validation["val_local"] == pytest.approx(math.fsum(rank0) / len(rank0), rel=1e-12)
    # the logged step (index 1) holds the mean over ranks of that step's batch means
    first, second = SHARDS[0][1], SHARDS[1][1]
    means = [math.fsum(ddp.SAMPLES[a:b]) / (b - a) for a, b in (first, second)]
    assert step["step"] == 1 and step["metrics"]["train_mean_step"] == pytest.approx(sum(means) / 2, rel=1e-12)
    # what reached the main process: the epoch mean, as a float32 tensor like Lightning's
    assert float(trainer.callback_metrics["val_mean"]) == pytest.approx(exact, rel=1e-6)
    assert os.path.exists(path)


def test_lightning_ddp_trainer_names_a_key_logged_on_one_rank_instead_of_hanging(tmp_path: Any) -> None:
    from _reducer_ddp_lightning import OneSidedModule

    trainer = _ddp_trainer(tmp_path, str(tmp_path / "metrics.jsonl"))
    with pytest.raises(Exception, match=r"(?s)SyncMismatchError.*rank 1 did not log only_on_rank0"):
        trainer.fit(OneSidedModule())
