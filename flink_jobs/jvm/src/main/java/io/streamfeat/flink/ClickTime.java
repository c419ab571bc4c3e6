package io.streamfeat.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code CLICK_TIME(v, event_types)}: a valid click's {@code event_time} (epoch ms), NULL for
 * any record the gate rejects, so no rejected record can move the watermark. Parsed by the
 * same {@link ClickParser} call the gate's {@link ParseClick} then reuses.
 */
public final class ClickTime extends ScalarFunction {
  public Long eval(byte[] value, String eventTypes) {
    ClickParser.Click c = ClickParser.parseCached(value, eventTypes);
    return c.reason == null ? c.eventTime : null;
  }
}
