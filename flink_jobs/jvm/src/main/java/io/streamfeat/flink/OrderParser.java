package io.streamfeat.flink;

import io.streamfeat.flink.RecordRules.Kind;
import io.streamfeat.flink.RecordRules.Value;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * The orders gate's parse: one Debezium change event of {@code public.orders} checked against
 * the CDC orders suite ({@code core/suites/cdc_orders.json}, compiled: {@link RecordRules}),
 * as {@code flink_jobs.logic.records.parse_cdc_order} does (the Python reference; a test
 * compares the two on generated input). A column is a path into the event; {@code row.} is
 * the row the change is about: {@code before} for a delete (op {@code d}), else {@code after}.
 * A valid event's {@code created_at} (Debezium's UTC form) is read to epoch ms, the fraction
 * truncated; an impossible date is {@code bad_created_at}. Nothing here throws on any input.
 */
public final class OrderParser {
  /** The parse of one event: {@code reason} null when valid. */
  public static final class Order {
    public final String op;
    public final long orderId;
    public final long customerId;
    public final long amountCents;
    public final Long createdMs;
    public final long sourceMs;
    public final long lsn;
    public final long commitLsn;
    public final String reason;
    public final String expectation;
    public final String detail;

    Order(Map<String, Value> r, Long createdMs) {
      this.op = r.get("op").text;
      this.orderId = r.get("row.id").number.longValueExact();
      this.customerId = r.get("row.customer_id").number.longValueExact();
      this.amountCents = r.get("row.amount_cents").number.longValueExact();
      this.createdMs = createdMs;
      this.sourceMs = r.get("source.ts_ms").number.longValueExact();
      long[] lsns = lsns(r);
      this.commitLsn = lsns[0];
      this.lsn = lsns[1];
      this.reason = null;
      this.expectation = null;
      this.detail = null;
    }

    Order(String reason, String expectation, String detail) {
      this.op = null;
      this.orderId = 0;
      this.customerId = 0;
      this.amountCents = 0;
      this.createdMs = null;
      this.sourceMs = 0;
      this.lsn = 0;
      this.commitLsn = 0;
      this.reason = reason;
      this.expectation = expectation;
      this.detail = detail;
    }
  }

  private static final LastParse<Order> LAST = new LastParse<>(OrderParser::parse);

  private OrderParser() {}

  /** {@link #parse}, once per record and thread ({@link LastParse}): the watermark's {@link
   * OrderTime} and the gate's {@link ParseOrder} ask in turn. */
  public static Order parseCached(byte[] value, String spec) {
    return LAST.of(value, spec);
  }

  /** The parse of one event value; {@code spec} the suite's rules (core.quality.rules_spec). */
  public static Order parse(byte[] value, String spec) {
    RecordRules rules = RecordRules.of(spec);
    Set<String> wanted = new LinkedHashSet<>();
    for (String c : rules.columns()) {
      if (c.startsWith("row.")) {
        wanted.add("after." + c.substring(4));
        wanted.add("before." + c.substring(4));
      } else {
        wanted.add(c);
      }
    }
    wanted.add("op");
    Map<String, Value> read;
    try {
      read = JsonRecord.read(value, wanted);
    } catch (JsonRecord.Invalid invalid) {
      return new Order(invalid.reason, null, invalid.getMessage());
    }
    Value op = read.get("op");
    String row = op != null && op.kind == Kind.STRING && op.text.equals("d") ? "before." : "after.";
    Map<String, Value> record = new HashMap<>();
    for (String c : rules.columns()) {
      Value v = read.get(c.startsWith("row.") ? row + c.substring(4) : c);
      if (v != null) {
        record.put(c, v);
      }
    }
    RecordRules.Broken broken = rules.check(record);
    if (broken != null) {
      return new Order(broken.reason, broken.expectation, broken.detail);
    }
    for (String c : new String[] {"op", "row.id", "row.customer_id", "row.amount_cents",
                                  "source.ts_ms", "source.lsn"}) {
      Value v = record.get(c);
      boolean text = c.equals("op");
      if (v == null || v.kind != (text ? Kind.STRING : Kind.INT)) {
        return new Order("bad_type", null, c + " is not guaranteed by the suite");
      }
    }
    Value created = record.get("row.created_at");
    Long createdMs = null;
    if (created != null && created.kind == Kind.STRING) {
      createdMs = utcMillis(created.text);
      if (createdMs == null) {
        return new Order("bad_created_at", null, "row.created_at " + created.shown
            + " is not a date and time");
      }
    }
    try {
      lsns(record);
    } catch (NumberFormatException e) {
      return new Order("bad_source", null, "source.sequence " + record.get("source.sequence").shown
          + " out of range");
    }
    return new Order(record, createdMs);
  }

  /**
   * (commit LSN, LSN) as core.version.cdc_version reads them: from {@code source.sequence}
   * ({@code ["<commit lsn>"|null, "<lsn>"]}, the suite's pattern) when present, else both the
   * {@code source.lsn}; a part above 2^63-1 throws.
   */
  private static long[] lsns(Map<String, Value> r) {
    long lsn = r.get("source.lsn").number.longValueExact();
    Value seq = r.get("source.sequence");
    if (seq == null || seq.kind != Kind.STRING || seq.text.isEmpty()) {
      return new long[] {lsn, lsn};
    }
    String[] parts = seq.text.replaceAll("[\\[\\]\" \n]", "").split(",");
    long current = Long.parseLong(parts[1]);
    long commit = parts[0].equals("null") ? current : Long.parseLong(parts[0]);
    return new long[] {commit, current};
  }

  /**
   * {@code yyyy-MM-ddTHH:mm:ss[.f{1,6}]Z} (the suite's pattern) to epoch ms, the fraction
   * truncated; null for an impossible date or time, or a year before 1 (Python's datetime).
   */
  static Long utcMillis(String given) {
    // the pattern's $ also passes a final newline, which Python's parse strips
    String text = given.endsWith("\n") ? given.substring(0, given.length() - 1) : given;
    try {
      int year = Integer.parseInt(text.substring(0, 4));
      if (year < 1) {
        return null;
      }
      LocalDateTime t = LocalDateTime.of(
          year,
          Integer.parseInt(text.substring(5, 7)),
          Integer.parseInt(text.substring(8, 10)),
          Integer.parseInt(text.substring(11, 13)),
          Integer.parseInt(text.substring(14, 16)),
          Integer.parseInt(text.substring(17, 19)));
      long ms = t.toEpochSecond(ZoneOffset.UTC) * 1000;
      if (text.length() > 20 && text.charAt(19) == '.') {
        String digits = (text.substring(20, text.length() - 1) + "000").substring(0, 3);
        ms += Integer.parseInt(digits);
      }
      return ms;
    } catch (RuntimeException e) {  // DateTimeException included
      return null;
    }
  }
}
