package io.streamfeat.flink;

import java.util.Base64;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code BYTES_BASE64(v)}: the bytes exactly as they arrived, in standard base64 (the DLQ's
 * {@code original_b64}). SQL's TO_BASE64 takes a string, and casting bytes that are not UTF-8
 * to a string replaces them.
 */
public final class BytesBase64 extends ScalarFunction {
  public String eval(byte[] value) {
    return value == null ? null : Base64.getEncoder().encodeToString(value);
  }
}
