package io.streamfeat.flink;

/** Event-time rules shared by the job's functions (no Flink types: testable on its own). */
public final class EventTimes {
  private EventTimes() {}

  /**
   * {@code floor_ms <= ms <= ingest_ms + ahead_ms} for any longs (a Kafka timestamp may be
   * -1): {@code core.events.plausible_event_time}.
   */
  public static boolean plausible(long ms, long ingestMs, long floorMs, long aheadMs) {
    if (ms < floorMs) {
      return false;
    }
    long latest = ingestMs > Long.MAX_VALUE - aheadMs ? Long.MAX_VALUE : ingestMs + aheadMs;
    return ms <= latest;
  }
}
