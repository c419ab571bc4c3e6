package io.streamfeat.flink;

import io.streamfeat.flink.RecordRules.Kind;
import io.streamfeat.flink.RecordRules.Value;
import java.util.Map;

/**
 * The clickstream gate's parse: one Kafka record value to a {@link Click}, valid or naming
 * the first rule it breaks, as {@code flink_jobs.logic.records.parse_click} does (the Python
 * reference; a test compares the two on generated input). The value must be one strict JSON
 * object ({@link JsonRecord}); then the
 * object must meet the clickstream suite's expectations ({@link RecordRules}, compiled from
 * {@code core/suites/clickstream.json}), which guarantee the fields the job reads. Nothing
 * here throws on any input.
 */
public final class ClickParser {
  /** The parse of one value: {@code reason} null when valid, else the fields are unset. */
  public static final class Click {
    public final String eventId;
    public final long userId;
    public final String eventType;
    public final String page;
    public final long eventTime;
    public final String reason;
    /** The suite's expectation that failed ({@code type(column)}); null if none was reached. */
    public final String expectation;
    public final String detail;

    Click(String eventId, long userId, String eventType, String page, long eventTime) {
      this.eventId = eventId;
      this.userId = userId;
      this.eventType = eventType;
      this.page = page;
      this.eventTime = eventTime;
      this.reason = null;
      this.expectation = null;
      this.detail = null;
    }

    Click(String reason, String expectation, String detail) {
      this.eventId = null;
      this.userId = 0;
      this.eventType = null;
      this.page = null;
      this.eventTime = 0;
      this.reason = reason;
      this.expectation = expectation;
      this.detail = detail;
    }
  }

  private static final class Bad extends Exception {
    final String reason;

    Bad(String reason, String detail) {
      super(detail, null, false, false);
      this.reason = reason;
    }
  }

  private static final LastParse<Click> LAST = new LastParse<>(ClickParser::parse);

  private ClickParser() {}

  /** {@link #parse} of {@code value}, once per record and thread ({@link LastParse}). */
  public static Click parseCached(byte[] value, String spec) {
    return LAST.of(value, spec);
  }

  /** The parse of one record value; {@code spec} the suite's rules (core.quality.rules_spec). */
  public static Click parse(byte[] value, String spec) {
    try {
      RecordRules rules = RecordRules.of(spec);
      Map<String, Value> record = JsonRecord.read(value, rules.columns());
      RecordRules.Broken broken = rules.check(record);
      if (broken != null) {
        return new Click(broken.reason, broken.expectation, broken.detail);
      }
      return new Click(
          string(record, "event_id"),
          integer(record, "user_id"),
          string(record, "event_type"),
          string(record, "page"),
          integer(record, "event_time"));
    } catch (JsonRecord.Invalid invalid) {
      return new Click(invalid.reason, null, invalid.getMessage());
    } catch (Bad bad) {
      return new Click(bad.reason, null, bad.getMessage());
    }
  }

  /**
   * A field the job reads, which the suite guarantees (core.quality.Suite.requires, checked
   * at deploy); should it not, the record is refused, never the job failed.
   */
  private static String string(Map<String, Value> record, String name) throws Bad {
    Value v = record.get(name);
    if (v == null || v.kind != Kind.STRING) {
      throw new Bad("bad_type", name + " is not a string (the suite does not require it)");
    }
    return v.text;
  }

  private static long integer(Map<String, Value> record, String name) throws Bad {
    Value v = record.get(name);
    if (v == null || v.kind != Kind.INT) {
      throw new Bad("bad_type", name + " is not an int64 (the suite does not require it)");
    }
    return v.number.longValueExact();
  }
}
