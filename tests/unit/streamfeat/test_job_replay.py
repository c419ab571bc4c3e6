"""The replay workflow's pure parts: a fresh consumer group per replay, remembered by later
deploys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.settings import StackSettings
from streamfeat.flink_client import FlinkClient
from streamfeat.job import _save_state, deploy, job_config, replay_group
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError

WHEN = datetime(2026, 11, 26, 4, 0, 0, tzinfo=UTC)


def test_a_replay_group_is_new_and_never_stacks_suffixes(tmp_path: Path) -> None:
    cfg = job_config(StackSettings(home=tmp_path))
    first = replay_group(cfg, WHEN)
    assert first == f"{cfg.group_id}-r20261126T040000"
    again = replay_group(
        cfg.model_copy(update={"group_id": first}), datetime(2026, 11, 27, tzinfo=UTC)
    )
    assert again == f"{cfg.group_id}-r20261127T000000"


def test_later_deploys_keep_the_recorded_group_unless_overridden(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)
    default = job_config(settings).group_id
    _save_state(StackContext(settings), job_id="j", group_id=f"{default}-r20261126T040000")
    assert job_config(settings).group_id == f"{default}-r20261126T040000"
    assert job_config(settings, group_id="mine").group_id == "mine"


def test_replay_and_savepoint_together_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="contradict"):
        deploy(StackSettings(home=tmp_path), replay=True, from_savepoint="/some/savepoint")


def test_lateness_the_plan_cannot_have_is_refused_before_anything_runs(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)
    cfg = job_config(settings, allowed_lateness_ms={"customer_orders": 5})
    with pytest.raises(StackError, match="customer_orders 5 ms, order_lags 10000 ms"):
        deploy(settings, cfg)


class _Flink(FlinkClient):
    """The real client's `end`, its REST calls recorded instead of sent."""

    def __init__(self, ctx: StackContext, stop_fails: bool) -> None:
        super().__init__(ctx)
        self.stop_fails = stop_fails
        self.calls: list[str] = []

    def stop_with_savepoint(
        self, job_id: str, timeout_s: float = 120.0, target: Path | None = None
    ) -> str:
        assert target is not None
        self.calls.append("stop")
        (target / "savepoint-1").mkdir(parents=True)
        if self.stop_fails:
            raise StackError(f"job {job_id}", "savepoint failed: the job is restarting")
        return (target / "savepoint-1").as_uri()

    def cancel(self, job_id: str) -> None:
        self.calls.append("cancel")

    def wait_terminal(self, job_id: str, timeout_s: float) -> str:
        self.calls.append("wait")
        return "CANCELED" if self.stop_fails else "FINISHED"


@pytest.mark.parametrize(
    ("stop_fails", "calls"), [(False, ["stop", "wait"]), (True, ["stop", "cancel", "wait"])]
)
def test_end_stops_gracefully_else_cancels_and_keeps_no_savepoint(
    tmp_path: Path, stop_fails: bool, calls: list[str]
) -> None:
    flink = _Flink(StackContext(StackSettings(home=tmp_path)), stop_fails)
    assert flink.end("j1") == ("CANCELED" if stop_fails else "FINISHED")
    assert flink.calls == calls
    assert not (tmp_path / "flink" / "cancel-savepoints" / "j1").exists()
