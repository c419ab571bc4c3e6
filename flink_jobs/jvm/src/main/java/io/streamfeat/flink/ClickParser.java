package io.streamfeat.flink;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import io.streamfeat.flink.RecordRules.Kind;
import io.streamfeat.flink.RecordRules.Value;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * The clickstream gate's parse: one Kafka record value to a {@link Click}, valid or naming
 * the first rule it breaks, as {@code flink_jobs.logic.records.parse_click} does (the Python
 * reference; a test compares the two on generated input). The value must be one strict JSON
 * document in UTF-8 and nothing after it (orjson's rules: no BOM, no NaN, no number that
 * overflows a double, no lone surrogate, nesting at most 1024 deep) and an object; then the
 * object must meet the clickstream suite's expectations ({@link RecordRules}, compiled from
 * {@code core/suites/clickstream.json}), which guarantee the fields the job reads. Nothing
 * here throws on any input.
 */
public final class ClickParser {
  /** Nesting depth orjson accepts (1024 levels; one more is invalid). */
  private static final int MAX_DEPTH = 1024;

  /** Digits of the largest integer below Double.MAX_VALUE (~1.8e308). */
  private static final int MAX_FINITE_DIGITS = 309;

  private static final BigInteger U64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

  private static final JsonFactory JSON =
      JsonFactory.builder()
          .streamReadConstraints(
              StreamReadConstraints.builder()
                  .maxNestingDepth(MAX_DEPTH)
                  .maxNumberLength(Integer.MAX_VALUE)
                  .maxStringLength(Integer.MAX_VALUE)
                  .build())
          .build();

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

  private static final class Cache {
    byte[] value;
    String spec;
    Click click;
  }

  private static final ThreadLocal<Cache> LAST = ThreadLocal.withInitial(Cache::new);

  private ClickParser() {}

  /**
   * {@link #parse} of {@code value}, remembered per thread for the next call with equal bytes:
   * the source's watermark generator and the gate after it, chained in one thread, ask for
   * the same record in turn and the JSON is parsed once.
   */
  public static Click parseCached(byte[] value, String spec) {
    Cache last = LAST.get();
    if (last.click != null
        && Arrays.equals(last.value, value)
        && (last.spec == spec || last.spec.equals(spec))) {
      return last.click;
    }
    Click click = parse(value, spec);
    last.value = value == null ? null : value.clone();
    last.spec = spec;
    last.click = click;
    return click;
  }

  /** The parse of one record value; {@code spec} the suite's rules (core.quality.rules_spec). */
  public static Click parse(byte[] value, String spec) {
    try {
      RecordRules rules = RecordRules.of(spec);
      Map<String, Value> record = object(value, rules.columns());
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
    } catch (Bad bad) {
      return new Click(bad.reason, null, bad.getMessage());
    }
  }

  /** The top-level values of a JSON object that {@code columns} name (the last of equal keys). */
  private static Map<String, Value> object(byte[] value, Set<String> columns) throws Bad {
    if (value == null) {
      throw new Bad("empty_value", "null value");
    }
    String problem = Utf8.problem(value);
    if (problem != null) {
      throw new Bad("invalid_json", problem);
    }
    Map<String, Value> record = new HashMap<>();
    try (JsonParser p = JSON.createParser(value)) {
      JsonToken root = p.nextToken();
      if (root == null) {
        throw new Bad("invalid_json", "no JSON value");
      }
      if (root != JsonToken.START_OBJECT) {
        skipValue(p, root);
        end(p);
        throw new Bad("not_an_object", "JSON " + kindName(root) + ", expected an object");
      }
      for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
        String name = checked(p.currentName());
        Value v = field(p, p.nextToken());
        if (columns.contains(name)) {
          record.put(name, v);
        }
      }
      end(p);
    } catch (IOException | RuntimeException e) {
      String message = String.valueOf(e.getMessage());
      int cut = message.indexOf('\n');
      throw new Bad("invalid_json", cut < 0 ? cap(message) : cap(message.substring(0, cut)));
    }
    return record;
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

  /** After the root value: nothing but whitespace. */
  private static void end(JsonParser p) throws IOException, Bad {
    JsonToken after = p.nextToken();
    if (after != null) {
      throw new Bad("invalid_json", "unexpected content after document");
    }
  }

  /** The value at token {@code t}, read (a container's content is checked and skipped). */
  private static Value field(JsonParser p, JsonToken t) throws IOException, Bad {
    switch (t) {
      case VALUE_STRING -> {
        String text = checked(p.getText());
        return new Value(Kind.STRING, text, null, shown(text));
      }
      case VALUE_NUMBER_INT -> {
        overflowsDouble(p);
        String shown = cap(p.getText());
        if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
          BigInteger big = p.getBigIntegerValue();
          double d = big.doubleValue();
          finite(d);
          // orjson's reading: an integer that fits an unsigned 64-bit int stays an integer,
          // a larger one (or one below -2^63) becomes the nearest double
          return big.signum() > 0 && big.compareTo(U64_MAX) <= 0
              ? new Value(Kind.BIG_INT, null, new BigDecimal(big), shown)
              : new Value(Kind.FLOAT, null, new BigDecimal(d), shown);
        }
        return new Value(Kind.INT, null, BigDecimal.valueOf(p.getLongValue()), shown);
      }
      case VALUE_NUMBER_FLOAT -> {
        double d = p.getDoubleValue();
        finite(d);
        return new Value(Kind.FLOAT, null, new BigDecimal(d), cap(p.getText()));
      }
      case VALUE_TRUE -> {
        return new Value(Kind.TRUE, null, null, "true");
      }
      case VALUE_FALSE -> {
        return new Value(Kind.FALSE, null, null, "false");
      }
      case VALUE_NULL -> {
        return new Value(Kind.NULL, null, null, "null");
      }
      case START_OBJECT -> {
        skipValue(p, t);
        return new Value(Kind.OBJECT, null, null, "{...}");
      }
      case START_ARRAY -> {
        skipValue(p, t);
        return new Value(Kind.ARRAY, null, null, "[...]");
      }
      default -> throw new Bad("invalid_json", "unexpected token " + t);
    }
  }

  /** Reads past the value starting at {@code t}, checking every string and number in it. */
  private static void skipValue(JsonParser p, JsonToken t) throws IOException, Bad {
    int depth = 0;
    do {
      switch (t) {
        case START_OBJECT, START_ARRAY -> depth++;
        case END_OBJECT, END_ARRAY -> depth--;
        case FIELD_NAME -> checked(p.currentName());
        case VALUE_STRING -> checked(p.getText());
        case VALUE_NUMBER_INT -> {
          overflowsDouble(p);
          if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
            finite(p.getBigIntegerValue().doubleValue());
          }
        }
        case VALUE_NUMBER_FLOAT -> finite(p.getDoubleValue());
        default -> { }
      }
      if (depth > 0) {
        t = p.nextToken();
      }
    } while (depth > 0);
  }

  /**
   * An integer of more than 309 digits is at least 1e309, which overflows a double (orjson:
   * invalid); it is refused from its length, before anything converts it (a million-digit
   * integer would take BigInteger seconds: a record must not stall the gate).
   */
  private static void overflowsDouble(JsonParser p) throws IOException, Bad {
    int digits = p.getTextLength() - (p.getTextCharacters()[p.getTextOffset()] == '-' ? 1 : 0);
    if (digits > MAX_FINITE_DIGITS) {
      throw new Bad("invalid_json", "number is infinity when parsed as double");
    }
  }

  /** A number orjson would read as a double must not overflow it. */
  private static void finite(double d) throws Bad {
    if (Double.isInfinite(d)) {
      throw new Bad("invalid_json", "number is infinity when parsed as double");
    }
  }

  /** A decoded string must not hold a lone surrogate (only a \\u escape can make one). */
  private static String checked(String s) throws Bad {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
          i++;
          continue;
        }
        throw new Bad("invalid_json", "lone surrogate in string");
      }
      if (Character.isLowSurrogate(c)) {
        throw new Bad("invalid_json", "lone surrogate in string");
      }
    }
    return s;
  }

  private static String kindName(JsonToken t) {
    return switch (t) {
      case START_ARRAY -> "list";
      case VALUE_STRING -> "str";
      case VALUE_NUMBER_INT -> "int";
      case VALUE_NUMBER_FLOAT -> "float";
      case VALUE_TRUE, VALUE_FALSE -> "bool";
      default -> "NoneType";
    };
  }

  private static String shown(String text) {
    return cap("'" + text + "'");
  }

  private static String cap(String text) {
    return text.length() <= 80 ? text : text.substring(0, 77) + "...";
  }
}
