"""Pure helpers of the benchmark harness: percentiles, measurements, Markdown and JSON.

Nothing here touches the stack, the clock or the host, so all of it is unit-tested.

Percentiles use the **nearest-rank** definition: for ``n`` sorted samples the p-th
percentile (0 < p <= 100) is the sample at 1-based rank ``ceil(p / 100 * n)``. It is always
one of the observed samples (no interpolation), so p100 is the maximum, any p of a single
sample is that sample, and p50 of an even count is the lower of the two middle samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

JSON_FORMAT = "streamfeat-bench/1"
"""Tag of the JSON report layout; bump it when the layout changes."""


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted (ascending) values, 0 < ``p`` <= 100."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    # p * n / 100 in one rounding step: ceil() of a product that is an exact integer in
    # decimal (e.g. 0.29 * 100) must not step to the next rank through float error.
    rank = math.ceil(round(p * len(sorted_values) / 100, 9))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Order statistics of one latency sample (same unit as the input)."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    def describe(self, unit: str) -> str:
        """One line for a table's detail column."""
        return (
            f"n={self.n}, min={self.min:.1f}, p90={self.p90:.1f}, "
            f"max={self.max:.1f} {unit} (nearest-rank)"
        )


def summarize(values: Iterable[float]) -> LatencySummary:
    """p50/p90/p99 (nearest-rank) plus min, max and count; the input need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("cannot summarize an empty sample")
    if any(math.isnan(v) for v in ordered):
        raise ValueError("latency sample contains NaN")
    return LatencySummary(
        n=len(ordered),
        min=ordered[0],
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


@dataclass(frozen=True)
class Measurement:
    """One figure of a benchmark run.

    ``baseline_for`` names the platform figure this one is the floor/ceiling for (e.g. the
    raw Redis HGETALL latency is the baseline for the feature API's online read); ``None``
    for a figure that is itself the thing measured. ``value`` must be finite (JSON has no
    NaN/inf).
    """

    name: str
    value: float
    unit: str
    detail: str = ""
    baseline_for: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a measurement needs a name")
        if not self.unit.strip():
            raise ValueError(f"measurement {self.name!r} needs a unit")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise TypeError(f"measurement {self.name!r}: value must be a number")
        if not math.isfinite(self.value):
            raise ValueError(f"measurement {self.name!r}: value {self.value} is not finite")


def format_value(value: float) -> str:
    """Human figure: thousands separators from 100 up, else 3 significant digits."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(text.replace("|", "\\|").split())


def render_table(measurements: Iterable[Measurement]) -> str:
    """A Markdown table: benchmark | value | unit | detail (baselines say what they serve)."""
    lines = ["| benchmark | value | unit | detail |", "|---|---:|---|---|"]
    for m in measurements:
        parts = [m.detail] if m.detail else []
        if m.baseline_for:
            parts.append(f"baseline for: {m.baseline_for}")
        detail = "; ".join(parts)
        lines.append(
            f"| {_cell(m.name)} | {format_value(m.value)} | {_cell(m.unit)} | {_cell(detail)} |"
        )
    return "\n".join(lines) + "\n"


def to_json(measurements: Iterable[Measurement], meta: Mapping[str, Any] | None = None) -> str:
    """The run as JSON: ``{"format", "meta", "measurements": [{name, value, ...}]}``."""
    doc = {
        "format": JSON_FORMAT,
        "meta": dict(meta or {}),
        "measurements": [asdict(m) for m in measurements],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def from_json(text: str) -> tuple[dict[str, Any], list[Measurement]]:
    """Inverse of :func:`to_json`: ``(meta, measurements)``; refuses another layout."""
    doc = json.loads(text)
    if doc.get("format") != JSON_FORMAT:
        raise ValueError(f"not a {JSON_FORMAT} document (format={doc.get('format')!r})")
    return dict(doc["meta"]), [Measurement(**m) for m in doc["measurements"]]
