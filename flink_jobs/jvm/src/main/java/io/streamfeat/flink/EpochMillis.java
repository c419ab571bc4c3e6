package io.streamfeat.flink;

import java.time.Instant;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/** {@code EPOCH_MS(ts)}: a TIMESTAMP_LTZ as epoch milliseconds (a Kafka record timestamp). */
public final class EpochMillis extends ScalarFunction {
  public Long eval(@DataTypeHint("TIMESTAMP_LTZ(3)") Instant t) {
    return t == null ? null : t.toEpochMilli();
  }
}
