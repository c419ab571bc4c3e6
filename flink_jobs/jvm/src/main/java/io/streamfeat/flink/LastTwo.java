package io.streamfeat.flink;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * {@code LAST_TWO(time, version, value)}: an entity's two latest events by {@code version}
 * (core/version.py's encoding, whose string order is the version order and leads with the
 * event time), as {@code ROW<t1, v1, x1, t2, v2, x2, n>}: the latest event's time, version and
 * value, then the one before it ({@code t2, v2, x2} NULL while there is only one), and
 * {@code n}, the events taken in (it only grows: with {@code v1} it orders the states of an
 * entity, as the previous event can still change while the latest stays). The lag features
 * of flink_jobs.logic.lags at the entity's latest event.
 *
 * <p>A plain (mini-batched, two-phase) group aggregation: no timers and no sorting, and the
 * answer does not depend on arrival order (ties in time are ordered by the rest of the
 * version, not by arrival as a {@code LAG} OVER aggregation orders them). An event whose
 * version is already held (the same record read twice) changes nothing. Append-only input:
 * no retraction.
 */
@FunctionHint(
    arguments = {
      @ArgumentHint(name = "event_time", type = @DataTypeHint("BIGINT")),
      @ArgumentHint(name = "version", type = @DataTypeHint("STRING")),
      @ArgumentHint(name = "event_value", type = @DataTypeHint("STRING"))
    },
    output =
        @DataTypeHint(
            "ROW<t1 BIGINT, v1 STRING, x1 STRING, t2 BIGINT, v2 STRING, x2 STRING, n BIGINT>"))
public final class LastTwo extends AggregateFunction<Row, LastTwo.Acc> {

  /** The two latest events held (a structured type: its public fields are its state). */
  public static final class Acc {
    public Long t1;
    public String v1;
    public String x1;
    public Long t2;
    public String v2;
    public String x2;
    public long n;

    public Acc() {}
  }

  @Override
  public Acc createAccumulator() {
    return new Acc();
  }

  public void accumulate(Acc acc, Long time, String version, String value) {
    offer(acc, time, version, value);
    acc.n += 1;
  }

  public void merge(Acc acc, Iterable<Acc> others) {
    for (Acc o : others) {
      offer(acc, o.t1, o.v1, o.x1);
      offer(acc, o.t2, o.v2, o.x2);
      acc.n += o.n;
    }
  }

  @Override
  public Row getValue(Acc acc) {
    if (acc.v1 == null) {
      return null;
    }
    return Row.of(acc.t1, acc.v1, acc.x1, acc.t2, acc.v2, acc.x2, acc.n);
  }

  static void offer(Acc acc, Long time, String version, String value) {
    if (version == null || time == null) {
      return;
    }
    if (acc.v1 == null || version.compareTo(acc.v1) > 0) {
      acc.t2 = acc.t1;
      acc.v2 = acc.v1;
      acc.x2 = acc.x1;
      acc.t1 = time;
      acc.v1 = version;
      acc.x1 = value;
    } else if (!version.equals(acc.v1) && (acc.v2 == null || version.compareTo(acc.v2) > 0)) {
      acc.t2 = time;
      acc.v2 = version;
      acc.x2 = value;
    }
  }
}
