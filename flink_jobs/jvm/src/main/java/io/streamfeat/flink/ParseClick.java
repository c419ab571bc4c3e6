package io.streamfeat.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * {@code PARSE_CLICK(v, rules)}: a clickstream record value parsed and checked once against
 * the clickstream suite ({@link ClickParser}); {@code reason} is NULL for a valid click, else
 * the DLQ reason, {@code expectation} the suite's expectation it failed (NULL when the value
 * is not a JSON object) and {@code detail} what broke it. {@code rules}: the suite's rules
 * (core.quality.rules_spec).
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
          + " reason STRING, expectation STRING, detail STRING>")
  public Row eval(byte[] value, String rules) {
    ClickParser.Click c = ClickParser.parseCached(value, rules);
    if (c.reason != null) {
      return Row.of(null, null, null, null, null, c.reason, c.expectation, c.detail);
    }
    return Row.of(c.eventId, c.userId, c.eventType, c.page, c.eventTime, null, null, null);
  }
}
