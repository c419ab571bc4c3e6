package io.streamfeat.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code CLICK_TIME(v, rules)}: a valid click's {@code event_time} (epoch ms), NULL for
 * any record the gate rejects, so no rejected record can move the watermark. Parsed by the
 * same {@link ClickParser} call the gate's {@link ParseClick} then reuses.
 */
public final class ClickTime extends ScalarFunction {
  public Long eval(byte[] value, String rules) {
    ClickParser.Click c = ClickParser.parseCached(value, rules);
    return c.reason == null ? c.eventTime : null;
  }
}
