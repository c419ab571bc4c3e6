package io.streamfeat.flink;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.types.RowKind;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import redis.clients.jedis.AbstractPipeline;
import redis.clients.jedis.RedisClient;
import redis.clients.jedis.Response;
import redis.clients.jedis.exceptions.JedisConnectionException;
import redis.clients.jedis.exceptions.JedisDataException;

/**
 * Rows {@code (key, script, args)} -> {@code EVALSHA script 1 key args...} on Redis, pipelined.
 *
 * <p>A row waits in the writer's buffer until {@code batchSize} rows are buffered, {@code
 * flushIntervalMs} has passed since the first of them, or a checkpoint barrier arrives ({@link
 * SinkWriter#flush}); a flush returns only after Redis answered every call, so no write is held
 * past the checkpoint that covers it (at-least-once). The scripts are version-guarded (core/online.py),
 * so a call sent twice — by a retry here or a replay after recovery — changes nothing.
 *
 * <p>While Redis is unreachable a batch is resent with backoff for up to {@code retryTimeoutMs},
 * holding back the stream; after that the writer fails and the job restarts from its checkpoint.
 * A script error (a bug, never data) fails at once, naming the key and the script. Redis
 * restarted without its script cache answers NOSCRIPT: the scripts are loaded and the batch
 * resent.
 */
public final class RedisScriptSink implements Sink<RowData> {

  private static final long serialVersionUID = 1L;

  private final String url;
  private final TreeMap<String, String> scripts;
  private final int batchSize;
  private final long flushIntervalMs;
  private final long retryTimeoutMs;

  public RedisScriptSink(
      String url,
      Map<String, String> scripts,
      int batchSize,
      long flushIntervalMs,
      long retryTimeoutMs) {
    if (batchSize < 1 || flushIntervalMs < 1 || retryTimeoutMs < 0) {
      throw new IllegalArgumentException(
          "batch.size and flush.interval must be positive, retry.timeout not negative");
    }
    this.url = url;
    this.scripts = new TreeMap<>(scripts);
    this.batchSize = batchSize;
    this.flushIntervalMs = flushIntervalMs;
    this.retryTimeoutMs = retryTimeoutMs;
  }

  Set<String> scriptNames() {
    return scripts.keySet();
  }

  @Override
  public SinkWriter<RowData> createWriter(WriterInitContext context) {
    return new Writer(this, context.getProcessingTimeService(), context.metricGroup().counter("redisCalls"));
  }

  /** SHA-1 of a script, as EVALSHA names it. */
  static String sha1(String script) {
    try {
      MessageDigest digest = MessageDigest.getInstance("SHA-1");
      return HexFormat.of().formatHex(digest.digest(script.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private record Call(String sha, String key, List<String> args) {}

  private static final class Writer implements SinkWriter<RowData> {

    private static final Logger LOG = LoggerFactory.getLogger(RedisScriptSink.class);
    private static final long MAX_BACKOFF_MS = 5_000;

    private final RedisScriptSink spec;
    private final ProcessingTimeService time;
    private final Counter calls;
    private final Map<String, String> shaByName = new TreeMap<>();
    private final List<Call> buffer = new ArrayList<>();
    private final RedisClient client;
    private boolean timerPending;

    Writer(RedisScriptSink spec, ProcessingTimeService time, Counter calls) {
      this.spec = spec;
      this.time = time;
      this.calls = calls;
      spec.scripts.forEach((name, lua) -> shaByName.put(name, sha1(lua)));
      this.client = RedisClient.create(URI.create(spec.url));
    }

    @Override
    public void write(RowData row, Context context) throws IOException, InterruptedException {
      RowKind kind = row.getRowKind();
      if (kind == RowKind.UPDATE_BEFORE || kind == RowKind.DELETE) {
        return; // an upsert of absolute values: a retraction has nothing to write
      }
      String key = row.getString(0).toString();
      String name = row.getString(1).toString();
      String sha = shaByName.get(name);
      if (sha == null) {
        throw new IOException(
            "online write for " + key + " names script '" + name + "', not one of "
                + shaByName.keySet());
      }
      ArrayData array = row.getArray(2);
      List<String> args = new ArrayList<>(array.size());
      for (int i = 0; i < array.size(); i++) {
        if (array.isNullAt(i)) {
          throw new IOException(
              "online write for " + key + " (script " + name + "): argument " + i + " is NULL");
        }
        args.add(array.getString(i).toString());
      }
      buffer.add(new Call(sha, key, args));
      if (buffer.size() >= spec.batchSize) {
        send();
      } else if (!timerPending) {
        timerPending = true;
        time.registerTimer(time.getCurrentProcessingTime() + spec.flushIntervalMs, this::onTimer);
      }
    }

    private void onTimer(long timestamp) throws IOException, InterruptedException {
      timerPending = false;
      send();
    }

    @Override
    public void flush(boolean endOfInput) throws IOException, InterruptedException {
      send();
    }

    /** Sends the buffer in one pipeline and returns once Redis answered every call. */
    private void send() throws IOException, InterruptedException {
      if (buffer.isEmpty()) {
        return;
      }
      long deadline = System.currentTimeMillis() + spec.retryTimeoutMs;
      long backoff = 100;
      boolean scriptsLoaded = false;
      while (true) {
        try {
          String missing = pipeline();
          if (missing == null) {
            calls.inc(buffer.size());
            buffer.clear();
            return;
          }
          if (scriptsLoaded) {
            throw new IOException("Redis at " + spec.url + " still lacks a script after loading: " + missing);
          }
          LOG.info("Redis answered NOSCRIPT ({}); loading the scripts and resending", missing);
          spec.scripts.values().forEach(client::scriptLoad);
          scriptsLoaded = true;
        } catch (JedisConnectionException e) {
          if (System.currentTimeMillis() + backoff > deadline) {
            throw new IOException(
                "Redis at " + spec.url + " unreachable for " + spec.retryTimeoutMs
                    + " ms (option retry.timeout); " + buffer.size()
                    + " writes unsent: the job restarts from its last checkpoint",
                e);
          }
          LOG.warn("Redis at {} unreachable ({}); resending {} writes in {} ms",
              spec.url, e.getMessage(), buffer.size(), backoff);
          Thread.sleep(backoff);
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        }
      }
    }

    /** One pipelined round of the buffer: null when every call ran, else a NOSCRIPT message. */
    private String pipeline() throws IOException {
      List<Response<Object>> answers = new ArrayList<>(buffer.size());
      try (AbstractPipeline pipe = client.pipelined()) {
        for (Call c : buffer) {
          answers.add(pipe.evalsha(c.sha, List.of(c.key), c.args));
        }
        pipe.sync();
      }
      for (int i = 0; i < answers.size(); i++) {
        try {
          answers.get(i).get();
        } catch (JedisDataException e) {
          String message = String.valueOf(e.getMessage());
          if (message.startsWith("NOSCRIPT")) {
            return message;
          }
          Call c = buffer.get(i);
          throw new IOException(
              "Redis script " + c.sha + " failed on key " + c.key + " with " + c.args + ": " + message, e);
        }
      }
      return null;
    }

    @Override
    public void close() {
      client.close();
    }
  }
}
