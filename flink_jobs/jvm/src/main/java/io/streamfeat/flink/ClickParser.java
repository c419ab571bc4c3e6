package io.streamfeat.flink;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import java.io.IOException;
import java.math.BigInteger;
import java.util.Arrays;
import java.util.Set;

/**
 * The clickstream gate's parse: one Kafka record value to a {@link Click}, valid or naming
 * the first rule it breaks. The rules, their order and the reasons are those of
 * {@code flink_jobs.logic.records.parse_click} (the Python reference; a test compares the two
 * on generated input): the value must be one strict JSON document in UTF-8 and nothing after
 * it (orjson's rules: no BOM, no NaN, no number that overflows a double, no lone surrogate,
 * nesting at most 1024 deep); an object; then {@code event_id} (a non-empty string),
 * {@code user_id} (an int in [1, 2^63-1]), {@code event_type} (a string, then one of the
 * known types), {@code page} (a string), {@code event_time} (an int in [1, 2^63-1]),
 * {@code properties} (an object, if present and not null). An absent key is
 * {@code missing_field}; a key present with the wrong type, {@code null} included, is
 * {@code bad_type} or the field's own reason. Nothing here throws on any input.
 */
public final class ClickParser {
  /** Nesting depth orjson accepts (1024 levels; one more is invalid). */
  private static final int MAX_DEPTH = 1024;

  /** Digits of the largest integer below Double.MAX_VALUE (~1.8e308). */
  private static final int MAX_FINITE_DIGITS = 309;

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
    public final String detail;

    Click(String eventId, long userId, String eventType, String page, long eventTime) {
      this.eventId = eventId;
      this.userId = userId;
      this.eventType = eventType;
      this.page = page;
      this.eventTime = eventTime;
      this.reason = null;
      this.detail = null;
    }

    Click(String reason, String detail) {
      this.eventId = null;
      this.userId = 0;
      this.eventType = null;
      this.page = null;
      this.eventTime = 0;
      this.reason = reason;
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

  /** One top-level value: its JSON kind, and its value where the rules read it. */
  private enum Kind {
    STRING,
    INT,
    BIG_INT,
    FLOAT,
    TRUE,
    FALSE,
    NULL,
    OBJECT,
    ARRAY
  }

  private static final class Field {
    Kind kind;
    String text;
    long number;
    String shown;
  }

  private static final class Cache {
    byte[] value;
    String types;
    Click click;
  }

  private static final ThreadLocal<Cache> LAST = ThreadLocal.withInitial(Cache::new);

  private static final class TypeSet {
    final String spec;
    final Set<String> names;

    TypeSet(String spec) {
      this.spec = spec;
      this.names = Set.of(spec.split("\\|"));
    }
  }

  private static final ThreadLocal<TypeSet> TYPES = new ThreadLocal<>();

  private ClickParser() {}

  /**
   * {@link #parse} of {@code value}, remembered per thread for the next call with equal bytes:
   * the source's watermark generator and the gate after it, chained in one thread, ask for
   * the same record in turn and the JSON is parsed once.
   */
  public static Click parseCached(byte[] value, String eventTypes) {
    Cache last = LAST.get();
    if (last.click != null
        && Arrays.equals(last.value, value)
        && (last.types == eventTypes || last.types.equals(eventTypes))) {
      return last.click;
    }
    Click click = parse(value, eventTypes);
    last.value = value == null ? null : value.clone();
    last.types = eventTypes;
    last.click = click;
    return click;
  }

  /** The parse of one record value; {@code eventTypes} the known types joined by '|'. */
  public static Click parse(byte[] value, String eventTypes) {
    try {
      return check(value, typeSet(eventTypes));
    } catch (Bad bad) {
      return new Click(bad.reason, bad.getMessage());
    }
  }

  private static Set<String> typeSet(String spec) {
    TypeSet known = TYPES.get();
    if (known == null || !known.spec.equals(spec)) {
      known = new TypeSet(spec);
      TYPES.set(known);
    }
    return known.names;
  }

  private static Click check(byte[] value, Set<String> eventTypes) throws Bad {
    if (value == null) {
      throw new Bad("empty_value", "null value");
    }
    Field eventId = null;
    Field userId = null;
    Field eventType = null;
    Field page = null;
    Field eventTime = null;
    Field properties = null;
    String problem = Utf8.problem(value);
    if (problem != null) {
      throw new Bad("invalid_json", problem);
    }
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
        JsonToken v = p.nextToken();
        Field f = field(p, v);
        switch (name) {
          case "event_id" -> eventId = f;
          case "user_id" -> userId = f;
          case "event_type" -> eventType = f;
          case "page" -> page = f;
          case "event_time" -> eventTime = f;
          case "properties" -> properties = f;
          default -> { }
        }
      }
      end(p);
    } catch (IOException | RuntimeException e) {
      String message = String.valueOf(e.getMessage());
      int cut = message.indexOf('\n');
      throw new Bad("invalid_json", cut < 0 ? cap(message) : cap(message.substring(0, cut)));
    }
    String id = string(eventId, "event_id");
    if (id.isEmpty()) {
      throw new Bad("bad_type", "event_id is empty");
    }
    long user = positiveInt(userId, "user_id", "bad_user_id");
    String type = string(eventType, "event_type");
    if (!eventTypes.contains(type)) {
      throw new Bad("unknown_event_type", "event_type " + eventType.shown);
    }
    String pageText = string(page, "page");
    long time = positiveInt(eventTime, "event_time", "bad_event_time");
    if (properties != null && properties.kind != Kind.NULL && properties.kind != Kind.OBJECT) {
      throw new Bad("bad_type", "properties=" + properties.shown + " is not an object");
    }
    return new Click(id, user, type, pageText, time);
  }

  /** After the root value: nothing but whitespace. */
  private static void end(JsonParser p) throws IOException, Bad {
    JsonToken after = p.nextToken();
    if (after != null) {
      throw new Bad("invalid_json", "unexpected content after document");
    }
  }

  private static String string(Field f, String name) throws Bad {
    if (f == null) {
      throw new Bad("missing_field", name + " is missing");
    }
    if (f.kind != Kind.STRING) {
      throw new Bad("bad_type", name + "=" + f.shown + " is not a string");
    }
    return f.text;
  }

  private static long positiveInt(Field f, String name, String reason) throws Bad {
    if (f == null) {
      throw new Bad("missing_field", name + " is missing");
    }
    if (f.kind != Kind.INT || f.number < 1) {
      throw new Bad(reason, name + "=" + f.shown + " is not an int in [1, 2^63-1]");
    }
    return f.number;
  }

  /** The value at token {@code t}, read (a container's content is checked and skipped). */
  private static Field field(JsonParser p, JsonToken t) throws IOException, Bad {
    Field f = new Field();
    switch (t) {
      case VALUE_STRING -> {
        f.kind = Kind.STRING;
        f.text = checked(p.getText());
        f.shown = shown(f.text);
      }
      case VALUE_NUMBER_INT -> {
        overflowsDouble(p);
        JsonParser.NumberType type = p.getNumberType();
        if (type == JsonParser.NumberType.BIG_INTEGER) {
          BigInteger big = p.getBigIntegerValue();
          finite(big.doubleValue());
          f.kind = Kind.BIG_INT;
        } else {
          f.kind = Kind.INT;
          f.number = p.getLongValue();
        }
        f.shown = cap(p.getText());
      }
      case VALUE_NUMBER_FLOAT -> {
        finite(p.getDoubleValue());
        f.kind = Kind.FLOAT;
        f.shown = cap(p.getText());
      }
      case VALUE_TRUE -> {
        f.kind = Kind.TRUE;
        f.shown = "true";
      }
      case VALUE_FALSE -> {
        f.kind = Kind.FALSE;
        f.shown = "false";
      }
      case VALUE_NULL -> {
        f.kind = Kind.NULL;
        f.shown = "null";
      }
      case START_OBJECT -> {
        skipValue(p, t);
        f.kind = Kind.OBJECT;
        f.shown = "{...}";
      }
      case START_ARRAY -> {
        skipValue(p, t);
        f.kind = Kind.ARRAY;
        f.shown = "[...]";
      }
      default -> throw new Bad("invalid_json", "unexpected token " + t);
    }
    return f;
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
