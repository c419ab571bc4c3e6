package io.streamfeat.flink;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.types.RowKind;

/**
 * The {@code streamfeat-redis} table connector: the feature job's online writes, each row one
 * call of a named Lua script, {@code (key STRING, script STRING, args ARRAY<STRING>)}. The scripts
 * are the online store's (core/online.py: {@code 'script.<name>' = '<lua>'} options, so their
 * text has one home); the rows carry everything else, derived from the feature views by
 * flink_jobs/sql.py. See {@link RedisScriptSink} for batching and delivery.
 *
 * <p>The rows are upserts of absolute values (a tile's value, an entity's lags): an
 * UPDATE_BEFORE or DELETE has nothing to write, so the sink asks for neither.
 */
public final class RedisScriptSinkFactory implements DynamicTableSinkFactory {

  static final String IDENTIFIER = "streamfeat-redis";
  static final String SCRIPT_PREFIX = "script.";

  static final ConfigOption<String> URL =
      ConfigOptions.key("url")
          .stringType()
          .noDefaultValue()
          .withDescription("Redis URL, e.g. redis://127.0.0.1:6379/0");
  static final ConfigOption<Integer> BATCH_SIZE =
      ConfigOptions.key("batch.size")
          .intType()
          .defaultValue(1000)
          .withDescription("Calls sent in one pipeline at most.");
  static final ConfigOption<Duration> FLUSH_INTERVAL =
      ConfigOptions.key("flush.interval")
          .durationType()
          .defaultValue(Duration.ofMillis(50))
          .withDescription("Longest a row waits in the buffer before it is sent.");
  static final ConfigOption<Duration> RETRY_TIMEOUT =
      ConfigOptions.key("retry.timeout")
          .durationType()
          .defaultValue(Duration.ofSeconds(60))
          .withDescription(
              "How long a batch is retried while Redis is unreachable before the job fails "
                  + "(and restarts from its last checkpoint).");

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(URL);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of(BATCH_SIZE, FLUSH_INTERVAL, RETRY_TIMEOUT);
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validateExcept(SCRIPT_PREFIX);
    checkSchema(context.getPhysicalRowDataType().getLogicalType());
    ReadableConfig options = helper.getOptions();
    Map<String, String> scripts = new TreeMap<>();
    context
        .getCatalogTable()
        .getOptions()
        .forEach(
            (k, v) -> {
              if (k.startsWith(SCRIPT_PREFIX)) {
                scripts.put(k.substring(SCRIPT_PREFIX.length()), v);
              }
            });
    if (scripts.isEmpty()) {
      throw new ValidationException(
          IDENTIFIER + ": no script given (options 'script.<name>' = '<lua source>')");
    }
    RedisScriptSink sink =
        new RedisScriptSink(
            options.get(URL),
            scripts,
            options.get(BATCH_SIZE),
            options.get(FLUSH_INTERVAL).toMillis(),
            options.get(RETRY_TIMEOUT).toMillis());
    return new Table(sink);
  }

  private static void checkSchema(LogicalType type) {
    RowType row = (RowType) type;
    List<LogicalType> fields = row.getChildren();
    boolean ok =
        fields.size() == 3
            && fields.get(0).is(LogicalTypeRoot.VARCHAR)
            && fields.get(1).is(LogicalTypeRoot.VARCHAR)
            && fields.get(2) instanceof ArrayType array
            && array.getElementType().is(LogicalTypeRoot.VARCHAR);
    if (!ok) {
      throw new ValidationException(
          IDENTIFIER + ": columns must be (key STRING, script STRING, args ARRAY<STRING>), got "
              + row);
    }
  }

  private record Table(RedisScriptSink sink) implements DynamicTableSink {

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requested) {
      ChangelogMode.Builder mode = ChangelogMode.newBuilder();
      for (RowKind kind : requested.getContainedKinds()) {
        if (kind != RowKind.UPDATE_BEFORE) {
          mode.addContainedKind(kind);
        }
      }
      return mode.build();
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
      return SinkV2Provider.of(sink);
    }

    @Override
    public DynamicTableSink copy() {
      return new Table(sink);
    }

    @Override
    public String asSummaryString() {
      return "Redis scripts " + sink.scriptNames();
    }
  }
}
