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
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * One Kafka record value read as a JSON object, strictly (orjson's rules: UTF-8, one document
 * and nothing after it, no BOM, no NaN, no number that overflows a double, no lone surrogate,
 * nesting at most 1024 deep), keeping the values of the columns a suite's rules read: a
 * top-level key, or a path into nested objects ({@code source.ts_ms}). Every string and
 * number is checked, also where it is skipped. Nothing here throws anything but {@link
 * Invalid}, whatever the bytes.
 */
public final class JsonRecord {
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

  /** Why a value is not a JSON object: {@code empty_value}, {@code invalid_json}, ... */
  public static final class Invalid extends Exception {
    public final String reason;

    Invalid(String reason, String detail) {
      super(detail, null, false, false);
      this.reason = reason;
    }
  }

  private JsonRecord() {}

  /**
   * The values of {@code columns} in the object {@code value} (a path's parts joined by '.';
   * of equal keys the last); an absent column is absent from the map.
   */
  public static Map<String, Value> read(byte[] value, Set<String> columns) throws Invalid {
    if (value == null) {
      throw new Invalid("empty_value", "null value");
    }
    String problem = Utf8.problem(value);
    if (problem != null) {
      throw new Invalid("invalid_json", problem);
    }
    Map<String, Value> record = new HashMap<>();
    try (JsonParser p = JSON.createParser(value)) {
      JsonToken root = p.nextToken();
      if (root == null) {
        throw new Invalid("invalid_json", "no JSON value");
      }
      if (root != JsonToken.START_OBJECT) {
        skipValue(p, root);
        end(p);
        throw new Invalid("not_an_object", "JSON " + kindName(root) + ", expected an object");
      }
      readObject(p, "", columns, record);
      end(p);
    } catch (IOException | RuntimeException e) {
      String message = String.valueOf(e.getMessage());
      int cut = message.indexOf('\n');
      throw new Invalid("invalid_json", cut < 0 ? cap(message) : cap(message.substring(0, cut)));
    }
    return record;
  }

  /** The fields of the object just opened, up to its end; {@code prefix} its path + '.'. */
  private static void readObject(
      JsonParser p, String prefix, Set<String> columns, Map<String, Value> record)
      throws IOException, Invalid {
    for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
      String path = prefix + checked(p.currentName());
      JsonToken v = p.nextToken();
      if (record.containsKey(path)) {  // an equal key before: the last one wins
        String start = path + ".";
        record.keySet().removeIf(k -> k.equals(path) || k.startsWith(start));
      }
      if (v == JsonToken.START_OBJECT && isParent(path, columns)) {
        record.put(path, new Value(Kind.OBJECT, null, null, "{...}"));
        readObject(p, path + ".", columns, record);
        continue;
      }
      Value read = field(p, v);
      if (columns.contains(path)) {
        record.put(path, read);
      }
    }
  }

  private static boolean isParent(String path, Set<String> columns) {
    String start = path + ".";
    for (String c : columns) {
      if (c.startsWith(start)) {
        return true;
      }
    }
    return false;
  }

  /** The value at token {@code t}, read (a container's content is checked and skipped). */
  private static Value field(JsonParser p, JsonToken t) throws IOException, Invalid {
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
      default -> throw new Invalid("invalid_json", "unexpected token " + t);
    }
  }

  /** After the root value: nothing but whitespace. */
  private static void end(JsonParser p) throws IOException, Invalid {
    JsonToken after = p.nextToken();
    if (after != null) {
      throw new Invalid("invalid_json", "unexpected content after document");
    }
  }


  /** Reads past the value starting at {@code t}, checking every string and number in it. */
  private static void skipValue(JsonParser p, JsonToken t) throws IOException, Invalid {
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
  private static void overflowsDouble(JsonParser p) throws IOException, Invalid {
    int digits = p.getTextLength() - (p.getTextCharacters()[p.getTextOffset()] == '-' ? 1 : 0);
    if (digits > MAX_FINITE_DIGITS) {
      throw new Invalid("invalid_json", "number is infinity when parsed as double");
    }
  }

  /** A number orjson would read as a double must not overflow it. */
  private static void finite(double d) throws Invalid {
    if (Double.isInfinite(d)) {
      throw new Invalid("invalid_json", "number is infinity when parsed as double");
    }
  }

  /** A decoded string must not hold a lone surrogate (only a \\u escape can make one). */
  private static String checked(String s) throws Invalid {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
          i++;
          continue;
        }
        throw new Invalid("invalid_json", "lone surrogate in string");
      }
      if (Character.isLowSurrogate(c)) {
        throw new Invalid("invalid_json", "lone surrogate in string");
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
