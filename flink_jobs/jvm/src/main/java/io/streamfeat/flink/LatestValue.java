package io.streamfeat.flink;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code LATEST_VALUE(event_time, value)}: the value of the latest event by event time, a tie
 * going to the greater value (core/windows.py, last): the answer does not depend on arrival
 * order or on how events are split between local accumulators (the two-phase aggregation).
 * NULL values do not take part; NULL when none did. Append-only input: no retraction.
 */
@FunctionHint(
    arguments = {
      @ArgumentHint(name = "event_time", type = @DataTypeHint("BIGINT")),
      @ArgumentHint(name = "event_value", type = @DataTypeHint("BIGINT"))
    },
    output = @DataTypeHint("BIGINT"))
public final class LatestValue extends AggregateFunction<Long, LatestValue.Acc> {

  /** The latest (time, value) taken in (a structured type: its public fields are its state). */
  public static final class Acc {
    public Long t;
    public Long v;

    public Acc() {}
  }

  @Override
  public Acc createAccumulator() {
    return new Acc();
  }

  public void accumulate(Acc acc, Long time, Long value) {
    if (time == null || value == null) {
      return;
    }
    if (acc.t == null || time > acc.t || (time.longValue() == acc.t && value > acc.v)) {
      acc.t = time;
      acc.v = value;
    }
  }

  public void merge(Acc acc, Iterable<Acc> others) {
    for (Acc o : others) {
      accumulate(acc, o.t, o.v);
    }
  }

  @Override
  public Long getValue(Acc acc) {
    return acc.v;
  }
}
