package io.streamfeat.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * {@code APPROX_DISTINCT(item)}: the HyperLogLog sketch of a tile's distinct items
 * (core/windows.py, approx_distinct), as {@code ROW<r0, r1, r2, r3>}: 64 registers of 4 bits,
 * 16 per BIGINT, register {@code i} in bits {@code 4 (i mod 16)} of column {@code i / 16}. An
 * item is hashed by {@link #hash} (the twin of core.windows.item_hash); register {@code h mod
 * 64} takes the rank of {@code h >>> 6} (its leading zeros in 58 bits + 1, at most 15) if
 * greater. Registers only grow, by maximum: the sketch does not depend on arrival order, on
 * how events are split between local accumulators, or on an item seen twice. NULL items are
 * not counted.
 */
@FunctionHint(
    arguments = {@ArgumentHint(name = "item", type = @DataTypeHint("STRING"))},
    output = @DataTypeHint("ROW<r0 BIGINT, r1 BIGINT, r2 BIGINT, r3 BIGINT>"))
public final class ApproxDistinct extends AggregateFunction<Row, ApproxDistinct.Acc> {

  /** The sketch's four columns (a structured type: its public fields are its state). */
  public static final class Acc {
    public long r0;
    public long r1;
    public long r2;
    public long r3;

    public Acc() {}
  }

  @Override
  public Acc createAccumulator() {
    return new Acc();
  }

  public void accumulate(Acc acc, String item) {
    if (item == null) {
      return;
    }
    long h = hash(item);
    int register = (int) (h & 63);
    long rest = h >>> 6;
    int rank = Math.min(15, Long.numberOfLeadingZeros(rest) - 6 + 1);
    int shift = 4 * (register & 15);
    long column = get(acc, register >>> 4);
    long held = (column >>> shift) & 15;
    if (rank > held) {
      set(acc, register >>> 4, (column & ~(15L << shift)) | ((long) rank << shift));
    }
  }

  public void merge(Acc acc, Iterable<Acc> others) {
    for (Acc o : others) {
      for (int c = 0; c < 4; c++) {
        set(acc, c, max(get(acc, c), get(o, c)));
      }
    }
  }

  @Override
  public Row getValue(Acc acc) {
    return Row.of(acc.r0, acc.r1, acc.r2, acc.r3);
  }

  /** FNV-1a over the item's UTF-8 bytes, then the splitmix64 finalizer. */
  static long hash(String item) {
    long h = 0xcbf29ce484222325L;
    for (byte b : item.getBytes(StandardCharsets.UTF_8)) {
      h = (h ^ (b & 0xff)) * 0x100000001b3L;
    }
    h = (h ^ (h >>> 30)) * 0xbf58476d1ce4e5b9L;
    h = (h ^ (h >>> 27)) * 0x94d049bb133111ebL;
    return h ^ (h >>> 31);
  }

  /** Register-wise maximum of two columns. */
  static long max(long a, long b) {
    long out = 0;
    for (int shift = 0; shift < 64; shift += 4) {
      out |= Math.max((a >>> shift) & 15, (b >>> shift) & 15) << shift;
    }
    return out;
  }

  private static long get(Acc acc, int c) {
    switch (c) {
      case 0:
        return acc.r0;
      case 1:
        return acc.r1;
      case 2:
        return acc.r2;
      default:
        return acc.r3;
    }
  }

  private static void set(Acc acc, int c, long v) {
    switch (c) {
      case 0:
        acc.r0 = v;
        break;
      case 1:
        acc.r1 = v;
        break;
      case 2:
        acc.r2 = v;
        break;
      default:
        acc.r3 = v;
    }
  }
}
