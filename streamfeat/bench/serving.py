"""Prediction latency (``streamfeat bench --suite serving``): the stack's model serving at
fixed rates from a separate load process (streamfeat/bench/api_load.py), beside the feature
lookup alone and a hello endpoint of the same server stack, in the same run.

Scenarios, each at every rate up to its saturation (open loop: latency from each request's
scheduled send time):

- ``predictor /v2/health/live``: the production predictor's KServe liveness route (the
  server stack's own floor: uvicorn, FastAPI, KServe's middleware);
- ``feature lookup``: the stack's feature API, ``user_activity`` of one user (what the
  predictor reads, alone);
- ``predict (predictor)``: one user through the production predictor: its features read
  online + the model;
- ``predict (endpoint)``: the same through the model endpoint (canary routing in front).

Needs the serving model in production (``streamfeat model train-demo``) reading
``user_activity``; the bench writes its users' tiles first. Goal (issue): prediction p99 <=
feature lookup p99 + 3 ms at 200 requests/s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from core.settings import StackSettings
from streamfeat.bench.api import Scenario, delete_tiles, run_rates, write_tiles
from streamfeat.bench.stats import Measurement
from streamfeat.stack.base import StackError

GOAL_RATE = 200.0
GOAL_MARGIN_MS = 3.0


def _production_reads_user_activity(settings: StackSettings) -> None:
    import httpx

    model = settings.serving_model
    url = f"{settings.models_url}/v1/models/{model}:predict"
    try:
        r = httpx.post(url, json={"instances": [1]}, timeout=10)
    except httpx.HTTPError as exc:
        raise StackError("bench serving", f"{url} unreachable: {exc}", fix="streamfeat up") from exc
    if r.status_code != 200:
        raise StackError(
            "bench serving",
            f"{url} answered {r.status_code}: {r.text[:200]}",
            fix="put a version in production: streamfeat model train-demo",
        )
    if "user_activity" not in r.json()["feature_age_ms"][0]:
        raise StackError(
            "bench serving",
            f"{model} in production does not read user_activity",
            fix="streamfeat model train-demo",
        )


def serving_latency(
    settings: StackSettings,
    *,
    rates: Sequence[float] = (50, 200, 400),
    seconds: float = 10.0,
    progress: Any = print,
) -> list[Measurement]:
    _production_reads_user_activity(settings)
    model = settings.serving_model
    ids = write_tiles(settings, time.time_ns() // 1_000_000)
    body = json.dumps({"instances": [ids[0]]})
    predict = f"/v1/models/{model}:predict"
    plans = [
        (
            settings.ports.predictor,
            [Scenario("predictor /v2/health/live", "GET", "/v2/health/live")],
        ),
        (
            settings.ports.api,
            [Scenario("feature lookup", "GET", f"/v1/features/user_activity/{ids[0]}")],
        ),
        (settings.ports.predictor, [Scenario("predict (predictor)", "POST", predict, body)]),
        (settings.ports.models, [Scenario("predict (endpoint)", "POST", predict, body)]),
    ]
    out: list[Measurement] = []
    p99: dict[tuple[str, float], float] = {}
    try:
        for port, plan in plans:
            p99.update(
                run_rates(
                    settings, port, plan, rates=rates, seconds=seconds, progress=progress, out=out
                )
            )
    finally:
        delete_tiles(settings, ids)
    return [_renamed(m) for m in out] + goal_rows(p99)


def goal_rows(p99: dict[tuple[str, float], float]) -> list[Measurement]:
    """The issue's goal per prediction route, from the unsaturated runs' p99 (ms)."""
    out = []
    lookup = p99.get(("feature lookup", GOAL_RATE))
    for name in ("predict (predictor)", "predict (endpoint)"):
        got = p99.get((name, GOAL_RATE))
        label = (
            f"goal ({name}): p99 <= feature lookup p99 + {GOAL_MARGIN_MS:g} ms at {GOAL_RATE:g}/s"
        )
        if got is None or lookup is None:
            out.append(Measurement(label, 0, "ms", "NOT measured (saturated or not run)"))
            continue
        verdict = "met" if got <= lookup + GOAL_MARGIN_MS else "NOT met"
        out.append(
            Measurement(label, got - lookup, "ms", f"{verdict}: {got:.2f} vs lookup {lookup:.2f}")
        )
    return out


def _renamed(m: Measurement) -> Measurement:
    """The api harness names rows ``api ...``; these are the serving suite's."""
    from dataclasses import replace

    return replace(m, name="serving " + m.name.removeprefix("api "))
