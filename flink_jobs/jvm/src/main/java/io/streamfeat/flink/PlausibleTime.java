package io.streamfeat.flink;

import java.time.Instant;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code PLAUSIBLE_TIME(ms, kts, floor_ms, ahead_ms)}: the rowtime of a record whose event
 * time is {@code ms} (epoch milliseconds, NULL when absent or invalid) and whose Kafka record
 * timestamp is {@code kts}: that instant when it is plausible -- not before {@code floor_ms}
 * and at most {@code ahead_ms} after {@code kts} -- else the epoch, behind every watermark.
 * Never NULL, for any input: a NULL rowtime fails the job. The rule of
 * {@code core.events.plausible_event_time}; SQL spelled it with NULLIF/LEAST/GREATEST, which
 * the planner expands into CASE and so evaluated {@code ms} (a JSON parse) up to 8 times.
 */
public final class PlausibleTime extends ScalarFunction {
  private static final Instant IMPLAUSIBLE = Instant.EPOCH;

  public @DataTypeHint("TIMESTAMP_LTZ(3)") Instant eval(
      Long ms, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant kts, long floorMs, long aheadMs) {
    if (ms == null || kts == null) {
      return IMPLAUSIBLE;
    }
    return EventTimes.plausible(ms, kts.toEpochMilli(), floorMs, aheadMs)
        ? Instant.ofEpochMilli(ms)
        : IMPLAUSIBLE;
  }
}
