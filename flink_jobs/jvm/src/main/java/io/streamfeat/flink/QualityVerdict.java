package io.streamfeat.flink;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code DQ_VERDICT(source, reason)}: {@code reason} unchanged, counted as a Flink metric: a
 * counter per source and verdict in the group {@code streamfeat_dq} ({@code good} for a NULL
 * reason, else the DLQ reason), which {@code streamfeat status} and {@code streamfeat dlq ls}
 * read through the REST API as {@code ...streamfeat_dq.<source>.<verdict>}.
 */
public final class QualityVerdict extends ScalarFunction {
  private transient MetricGroup group;
  private transient Map<String, Counter> counters;

  @Override
  public void open(FunctionContext context) {
    group = context.getMetricGroup().addGroup("streamfeat_dq");
    counters = new HashMap<>();
  }

  /** Called once per record: declared non-deterministic so the planner never repeats it. */
  @Override
  public boolean isDeterministic() {
    return false;
  }

  public String eval(String source, String reason) {
    String verdict = reason == null ? "good" : reason;
    String key = source + '\u0000' + verdict;
    Counter c = counters.get(key);
    if (c == null) {
      c = group.addGroup(source).counter(verdict);
      counters.put(key, c);
    }
    c.inc();
    return reason;
  }
}
