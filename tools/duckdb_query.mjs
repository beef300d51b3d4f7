// Runs SQL queries with DuckDB (an independent Parquet reader) and prints one JSON line per
// query. Used by tools/check-shards.sh to show that cocoflow's shards are plain Parquet.
import { DuckDBInstance } from '@duckdb/node-api';

const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
for (const q of process.argv.slice(2)) {
  const r = await con.runAndReadAll(q);
  console.log(JSON.stringify(r.getRowObjectsJson()));
}
