package io.streamfeat.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * {@code PARSE_ORDER(v, rules)}: a CDC orders event parsed and checked once against the CDC
 * orders suite ({@link OrderParser}); {@code reason} NULL for a valid event, else the DLQ
 * reason, {@code expectation} the suite's expectation it failed and {@code detail} what broke
 * it. {@code rules}: the suite's rules (core.quality.rules_spec).
 */
public final class ParseOrder extends ScalarFunction {
  /** Deterministic in fact; declared otherwise so the planner computes it once per record. */
  @Override
  public boolean isDeterministic() {
    return false;
  }

  @DataTypeHint(
      "ROW<op STRING, order_id BIGINT, customer_id BIGINT, amount_cents BIGINT, order_ms BIGINT,"
          + " src_ms BIGINT, commit_lsn BIGINT, lsn BIGINT, reason STRING, expectation STRING,"
          + " detail STRING>")
  public Row eval(byte[] value, String rules) {
    OrderParser.Order o = OrderParser.parseCached(value, rules);
    if (o.reason != null) {
      return Row.of(null, null, null, null, null, null, null, null, o.reason, o.expectation,
          o.detail);
    }
    return Row.of(o.op, o.orderId, o.customerId, o.amountCents, o.createdMs, o.sourceMs,
        o.commitLsn, o.lsn, null, null, null);
  }
}
