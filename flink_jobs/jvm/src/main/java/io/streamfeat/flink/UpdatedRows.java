package io.streamfeat.flink;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

/**
 * {@code UPDATED_ROWS(input => TABLE t)}: an updating table of feature rows (flink_jobs/sql.py
 * {@code FEATURE_ROW}: view, grp, entity_id, event_time, version, features) as an append-only
 * table of every value it took: each INSERT and UPDATE_AFTER becomes a row, retractions and
 * deletes are left out. The offline table takes the online tile updates this way: each update
 * is an absolute value carrying its version (the tile's event count), and the training-set
 * join keeps the greatest version per tile, so no watermark-driven second aggregation is
 * needed for the final tiles.
 */
@DataTypeHint(
    "ROW<view STRING, grp STRING, entity_id BIGINT, event_time BIGINT, version STRING, "
        + "features MAP<STRING, STRING>>")
public final class UpdatedRows extends ProcessTableFunction<Row> {

  public void eval(
      @ArgumentHint({ArgumentTrait.ROW_SEMANTIC_TABLE, ArgumentTrait.SUPPORT_UPDATES})
          Row input) {
    RowKind kind = input.getKind();
    if (kind == RowKind.INSERT || kind == RowKind.UPDATE_AFTER) {
      Row out = new Row(RowKind.INSERT, 6);
      for (int i = 0; i < 6; i++) {
        out.setField(i, input.getField(i));
      }
      collect(out);
    }
  }
}
