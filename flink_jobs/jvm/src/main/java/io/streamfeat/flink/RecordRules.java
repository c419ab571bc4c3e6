package io.streamfeat.flink;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A Great Expectations suite compiled to record-level rules ({@code core.quality.rules_spec}):
 * the one statement of a good record, checked here on one parsed JSON object at a time with
 * the meaning {@code core.quality} gives each expectation (a test compares the two on
 * generated input). Rules run in the suite's order; the first that fails names the DLQ reason
 * and the expectation. Nothing here throws on any record.
 */
public final class RecordRules {
  private static final String SEP_RULE = "\u001e";
  private static final String SEP_FIELD = "\u001f";
  private static final String SEP_ITEM = "\u001d";

  /** A top-level value of the record, as the rules read it. */
  public static final class Value {
    public final Kind kind;
    public final String text;
    public final BigDecimal number;
    public final String shown;

    public Value(Kind kind, String text, BigDecimal number, String shown) {
      this.kind = kind;
      this.text = text;
      this.number = number;
      this.shown = shown;
    }
  }

  /** The JSON kinds; INT fits a long, BIG_INT does not. */
  public enum Kind {
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

  /** The first rule a record breaks. */
  public static final class Broken {
    public final String reason;
    public final String expectation;
    public final String detail;

    Broken(String reason, String expectation, String detail) {
      this.reason = reason;
      this.expectation = expectation;
      this.detail = detail;
    }
  }

  private abstract static class Rule {
    final String reason;
    final String label;
    final String column;

    Rule(String[] f) {
      this.reason = f[0];
      this.label = f[1];
      this.column = f[3];
    }

    /** Null when {@code v} (null: the key is absent) meets the rule, else what is wrong. */
    abstract String problem(Value v);
  }

  /** A rule on present values: a null or absent one passes it, as in Great Expectations. */
  private abstract static class ValueRule extends Rule {
    ValueRule(String[] f) {
      super(f);
    }

    @Override
    final String problem(Value v) {
      return v == null || v.kind == Kind.NULL ? null : present(v);
    }

    abstract String present(Value v);
  }

  private final String spec;
  private final List<Rule> rules = new ArrayList<>();
  private final Set<String> columns = new LinkedHashSet<>();

  private RecordRules(String spec) {
    this.spec = spec;
    for (String text : spec.split(SEP_RULE, -1)) {
      String[] f = text.split(SEP_FIELD, -1);
      Rule r = rule(f);
      rules.add(r);
      columns.add(r.column);
    }
  }

  private static final ThreadLocal<RecordRules> LAST = new ThreadLocal<>();

  /** The rules of {@code spec}, compiled once per thread while the spec stays the same. */
  public static RecordRules of(String spec) {
    RecordRules last = LAST.get();
    if (last == null || !(last.spec == spec || last.spec.equals(spec))) {
      last = new RecordRules(spec);
      LAST.set(last);
    }
    return last;
  }

  /** The columns the rules read (the parser keeps only these). */
  public Set<String> columns() {
    return columns;
  }

  /** The first rule the record breaks, or null; {@code record} maps column to its value. */
  public Broken check(Map<String, Value> record) {
    for (Rule r : rules) {
      String problem = r.problem(record.get(r.column));
      if (problem != null) {
        return new Broken(r.reason, r.label, r.label + ": " + problem);
      }
    }
    return null;
  }

  private static Rule rule(String[] f) {
    switch (f[2]) {
      case "expect_column_to_exist":
        return new Rule(f) {
          @Override
          String problem(Value v) {
            return v == null ? "is missing" : null;
          }
        };
      case "expect_column_values_to_not_be_null":
        return new Rule(f) {
          @Override
          String problem(Value v) {
            return v == null ? "is missing" : v.kind == Kind.NULL ? "is null" : null;
          }
        };
      case "expect_column_values_to_be_of_type":
        return typeRule(f);
      case "expect_column_values_to_be_in_set":
        return setRule(f);
      case "expect_column_values_to_be_between":
        return new ValueRule(f) {
          final Range range = new Range(f);

          @Override
          String present(Value v) {
            return v.number != null && range.holds(v.number)
                ? null
                : v.shown + " is not between " + range;
          }
        };
      case "expect_column_values_to_match_regex":
        return new ValueRule(f) {
          // UNIX_LINES: only \n ends a line for ., ^ and $, as in Python's re
          final Pattern pattern = Pattern.compile(f[4], Pattern.UNIX_LINES);

          @Override
          String present(Value v) {
            return v.kind == Kind.STRING && pattern.matcher(v.text).find()
                ? null
                : v.shown + " does not match '" + f[4] + "'";
          }
        };
      case "expect_column_value_lengths_to_be_between":
        return new ValueRule(f) {
          final Range range = new Range(f);

          @Override
          String present(Value v) {
            if (v.kind != Kind.STRING) {
              return "length no of " + v.shown + " is not between " + range;
            }
            int length = v.text.codePointCount(0, v.text.length());
            return range.holds(BigDecimal.valueOf(length))
                ? null
                : "length " + length + " of " + v.shown + " is not between " + range;
          }
        };
      default:
        throw new IllegalArgumentException("unsupported expectation " + f[2]);
    }
  }

  private static Rule typeRule(String[] f) {
    Set<Kind> kinds =
        switch (f[4]) {
          case "str" -> Set.of(Kind.STRING);
          case "int" -> Set.of(Kind.INT);
          case "float" -> Set.of(Kind.FLOAT);
          case "bool" -> Set.of(Kind.TRUE, Kind.FALSE);
          case "dict" -> Set.of(Kind.OBJECT);
          case "list" -> Set.of(Kind.ARRAY);
          default -> throw new IllegalArgumentException("unsupported type " + f[4]);
        };
    return new ValueRule(f) {
      @Override
      String present(Value v) {
        return kinds.contains(v.kind) ? null : v.shown + " is not of type " + f[4];
      }
    };
  }

  private static Rule setRule(String[] f) {
    Set<String> strings = new java.util.HashSet<>();
    List<BigDecimal> numbers = new ArrayList<>();
    Set<Kind> booleans = java.util.EnumSet.noneOf(Kind.class);
    if (!f[4].isEmpty()) {
      for (String m : f[4].split(SEP_ITEM, -1)) {
        switch (m.charAt(0)) {
          case 's' -> strings.add(m.substring(1));
          case 'b' -> booleans.add(m.equals("b1") ? Kind.TRUE : Kind.FALSE);
          default -> numbers.add(number(m));
        }
      }
    }
    return new ValueRule(f) {
      @Override
      String present(Value v) {
        boolean in =
            switch (v.kind) {
              case STRING -> strings.contains(v.text);
              case TRUE, FALSE -> booleans.contains(v.kind);
              case INT, BIG_INT, FLOAT -> numbers.stream().anyMatch(n -> n.compareTo(v.number) == 0);
              default -> false;
            };
        return in ? null : v.shown + " is not in the set";
      }
    };
  }

  /** A bound or member of the spec: {@code i<integer>} or {@code f<float repr>}, exactly. */
  private static BigDecimal number(String m) {
    String digits = m.substring(1);
    return m.charAt(0) == 'i'
        ? new BigDecimal(new BigInteger(digits))
        : new BigDecimal(Double.parseDouble(digits));
  }

  private static final class Range {
    final BigDecimal low;
    final BigDecimal high;
    final boolean strictLow;
    final boolean strictHigh;

    Range(String[] f) {
      this.low = f[4].isEmpty() ? null : number(f[4]);
      this.high = f[5].isEmpty() ? null : number(f[5]);
      this.strictLow = f[6].equals("1");
      this.strictHigh = f[7].equals("1");
    }

    boolean holds(BigDecimal n) {
      if (low != null && (strictLow ? n.compareTo(low) <= 0 : n.compareTo(low) < 0)) {
        return false;
      }
      return high == null || (strictHigh ? n.compareTo(high) < 0 : n.compareTo(high) <= 0);
    }

    @Override
    public String toString() {
      return (strictLow ? "(" : "[")
          + (low == null ? "-inf" : low.toString())
          + ", "
          + (high == null ? "inf" : high.toString())
          + (strictHigh ? ")" : "]");
    }
  }
}
