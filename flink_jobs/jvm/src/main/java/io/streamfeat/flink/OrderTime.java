package io.streamfeat.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code ORDER_TIME(v, rules)}: a valid order event's {@code created_at} (epoch ms), NULL for
 * any event the gate rejects or that has none, so no rejected record can move the watermark.
 * Parsed by the same {@link OrderParser} call the gate's {@link ParseOrder} then reuses.
 */
public final class OrderTime extends ScalarFunction {
  public Long eval(byte[] value, String rules) {
    OrderParser.Order o = OrderParser.parseCached(value, rules);
    return o.reason == null ? o.createdMs : null;
  }
}
