package io.streamfeat.flink;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * {@link ClickParser} from the command line, to compare it with the Python reference:
 * {@code java -cp <udf jars> io.streamfeat.flink.ClickParserCheck <rules>} reads one
 * record value per line (base64; a line "-" is a null value) and prints one line each:
 * {@code ok <event_id b64> <user_id> <event_type> <page b64> <event_time>} or the reason and
 * the failed expectation ({@code -} if none). {@code <rules>}: core.quality.rules_spec.
 * With {@code --plausible} instead: lines {@code ms ingest_ms floor_ms ahead_ms} in, 1 or 0
 * out ({@link EventTimes#plausible}). With {@code --last-two}: lines of events
 * {@code time,version,value} separated by {@code ;}, in groups separated by {@code |} (each
 * group one local accumulator of {@link LastTwo}, merged in order into the first, as the
 * two-phase aggregation does) in, {@code t1 v1 x1 t2 v2 x2} out ({@code -} for NULL). With
 * {@code --sketch} ({@link ApproxDistinct}): groups of items, each {@code x<base64>}, {@code r0 r1 r2 r3} out;
 * with {@code --latest} ({@link LatestValue}): groups of {@code time,value}, the value out;
 * with {@code --orders <rules>} ({@link OrderParser}): order event values (base64) in,
 * {@code ok op id customer amount created_ms|- source_ms commit_lsn lsn} or the reason and
 * expectation out.
 */
public final class ClickParserCheck {
  private ClickParserCheck() {}

  public static void main(String[] args) throws Exception {
    Base64.Decoder dec = Base64.getDecoder();
    Base64.Encoder enc = Base64.getEncoder();
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    if (args[0].equals("--plausible")) {
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        String[] f = line.trim().split(" ");
        long[] n = new long[4];
        for (int i = 0; i < 4; i++) {
          n[i] = Long.parseLong(f[i]);
        }
        out.println(EventTimes.plausible(n[0], n[1], n[2], n[3]) ? "1" : "0");
      }
      return;
    }
    if (args[0].equals("--last-two")) {
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        out.println(AggregateCheck.lastTwo(line.trim()));
      }
      return;
    }
    if (args[0].equals("--sketch")) {
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        out.println(AggregateCheck.sketch(line.trim(), dec));
      }
      return;
    }
    if (args[0].equals("--orders")) {
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        byte[] value = line.equals("-") ? null : dec.decode(line.trim());
        OrderParser.Order o = OrderParser.parse(value, args[1]);
        out.println(
            o.reason != null
                ? o.reason + " " + (o.expectation == null ? "-" : o.expectation)
                : String.join(" ", "ok", o.op, Long.toString(o.orderId),
                    Long.toString(o.customerId), Long.toString(o.amountCents),
                    o.createdMs == null ? "-" : Long.toString(o.createdMs),
                    Long.toString(o.sourceMs), Long.toString(o.commitLsn), Long.toString(o.lsn)));
      }
      return;
    }
    if (args[0].equals("--latest")) {
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        out.println(AggregateCheck.latest(line.trim()));
      }
      return;
    }
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      byte[] value = line.equals("-") ? null : dec.decode(line.trim());
      ClickParser.Click c = ClickParser.parse(value, args[0]);
      if (c.reason != null) {
        out.println(c.reason + " " + (c.expectation == null ? "-" : c.expectation));
      } else {
        out.println(
            String.join(
                " ",
                "ok",
                enc.encodeToString(c.eventId.getBytes(StandardCharsets.UTF_8)),
                Long.toString(c.userId),
                c.eventType,
                enc.encodeToString(c.page.getBytes(StandardCharsets.UTF_8)),
                Long.toString(c.eventTime)));
      }
    }
    out.flush();
  }
}
