package io.streamfeat.flink;

import java.util.Arrays;
import java.util.function.BiFunction;

/**
 * The last parse of a record, remembered per thread: a source's watermark generator and the
 * gate after it, chained in one thread, ask for the same record in turn, and its JSON is
 * parsed once. Keyed by the record's bytes and the rules it was checked against.
 */
final class LastParse<T> {
  private static final class Entry<T> {
    byte[] value;
    String spec;
    T parsed;
  }

  private final ThreadLocal<Entry<T>> last = ThreadLocal.withInitial(Entry::new);
  private final BiFunction<byte[], String, T> parse;

  LastParse(BiFunction<byte[], String, T> parse) {
    this.parse = parse;
  }

  /** {@code parse(value, spec)}, or the same call's answer if it was the last one. */
  T of(byte[] value, String spec) {
    Entry<T> e = last.get();
    if (e.parsed != null
        && Arrays.equals(e.value, value)
        && (e.spec == spec || e.spec.equals(spec))) {
      return e.parsed;
    }
    T parsed = parse.apply(value, spec);
    e.value = value == null ? null : value.clone();
    e.spec = spec;
    e.parsed = parsed;
    return parsed;
  }
}
