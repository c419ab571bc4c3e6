package io.streamfeat.flink;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * The aggregate functions' modes of {@link ClickParserCheck} ({@code --last-two},
 * {@code --sketch}, {@code --latest}): a class of their own, so the parser's modes run
 * without Flink's table API on the classpath.
 */
final class AggregateCheck {
  private AggregateCheck() {}

  /**
   * The aggregate's value over a line of groups: each group (separated by {@code |}) is one
   * local accumulator fed its items (separated by {@code ;}), then merged in order into the
   * first, as the two-phase aggregation does.
   */
  static <T, A> T merged(
      String line,
      AggregateFunction<T, A> f,
      java.util.function.BiConsumer<A, String> accumulate,
      java.util.function.BiConsumer<A, java.util.List<A>> merge) {
    java.util.List<A> groups = new java.util.ArrayList<>();
    for (String group : line.split("\\|", -1)) {
      A acc = f.createAccumulator();
      for (String item : group.split(";")) {
        if (!item.isEmpty()) {
          accumulate.accept(acc, item);
        }
      }
      groups.add(acc);
    }
    A head = groups.get(0);
    merge.accept(head, groups.subList(1, groups.size()));
    return f.getValue(head);
  }

  static String lastTwo(String line) {
    LastTwo f = new LastTwo();
    Row r =
        merged(
            line,
            f,
            (acc, event) -> {
              String[] e = event.split(",", -1);
              f.accumulate(acc, Long.parseLong(e[0]), e[1], e[2]);
            },
            f::merge);
    if (r == null) {
      return "-";
    }
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < r.getArity(); i++) {
      Object v = r.getField(i);
      b.append(i == 0 ? "" : " ").append(v == null ? "-" : v.toString());
    }
    return b.toString();
  }

  static String sketch(String line, Base64.Decoder dec) {
    ApproxDistinct f = new ApproxDistinct();
    Row r =
        merged(
            line,
            f,
            (acc, item) ->
                f.accumulate(acc, new String(dec.decode(item.substring(1)), StandardCharsets.UTF_8)),
            f::merge);
    return r.getField(0) + " " + r.getField(1) + " " + r.getField(2) + " " + r.getField(3);
  }

  static String latest(String line) {
    LatestValue f = new LatestValue();
    Long v =
        merged(
            line,
            f,
            (acc, event) -> {
              String[] e = event.split(",", -1);
              f.accumulate(acc, Long.parseLong(e[0]), Long.parseLong(e[1]));
            },
            f::merge);
    return v == null ? "-" : v.toString();
  }
}
