package io.streamfeat.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * {@code PARSE_CLICK(v, event_types)}: a clickstream record value parsed and checked once
 * ({@link ClickParser}); {@code reason} is NULL for a valid click, else the DLQ reason and
 * {@code detail} what broke it. {@code event_types}: the known types joined by '|'.
 */
public final class ParseClick extends ScalarFunction {
  /**
   * Deterministic in fact; declared otherwise so the planner computes it once per record
   * (it would otherwise inline the call into each field read of its result: 7 calls).
   */
  @Override
  public boolean isDeterministic() {
    return false;
  }

  @DataTypeHint(
      "ROW<event_id STRING, user_id BIGINT, event_type STRING, page STRING, event_time BIGINT,"
          + " reason STRING, detail STRING>")
  public Row eval(byte[] value, String eventTypes) {
    ClickParser.Click c = ClickParser.parseCached(value, eventTypes);
    if (c.reason != null) {
      return Row.of(null, null, null, null, null, c.reason, c.detail);
    }
    return Row.of(c.eventId, c.userId, c.eventType, c.page, c.eventTime, null, null);
  }
}
