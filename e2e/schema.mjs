// Prints a JSON snapshot of Directus's tables (definitions, indexes, and a digest of every
// row) so the runner can prove that starting gatehouse on a Directus database changes none
// of them.
//   DB_CLIENT=sqlite3 DB_FILENAME=… node schema.mjs > snap.json
//   DB_CLIENT=pg DB_CONNECTION_STRING=… node schema.mjs > snap.json
import { createHash } from 'node:crypto';
import sqlite3 from 'sqlite3';
import pg from 'pg';

const digest = (rows) => createHash('sha256').update(JSON.stringify(rows)).digest('hex').slice(0, 16);

async function sqliteSnapshot(file) {
  const db = new sqlite3.Database(file, sqlite3.OPEN_READONLY);
  const all = (sql, params = []) =>
    new Promise((resolve, reject) => db.all(sql, params, (e, rows) => (e ? reject(e) : resolve(rows))));
  const objects = await all(
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name LIKE 'directus\\_%' ESCAPE '\\' ORDER BY type, name",
  );
  const tables = {};
  const indexes = {};
  const rows = {};
  for (const o of objects) {
    if (o.type === 'table') {
      tables[o.name] = o.sql;
      const r = await all(`SELECT * FROM "${o.name}" ORDER BY rowid`);
      rows[o.name] = { count: r.length, digest: digest(r) };
    } else if (o.type === 'index') {
      indexes[o.name] = `${o.tbl_name}: ${o.sql ?? '(automatic)'}`;
    }
  }
  const [{ journal_mode }] = await all('PRAGMA journal_mode');
  await new Promise((r) => db.close(r));
  return { client: 'sqlite3', tables, indexes, rows, journal_mode };
}

async function pgSnapshot(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const q = async (sql, params) => (await client.query(sql, params)).rows;
  const cols = await q(
    `SELECT table_name, column_name, data_type, is_nullable, column_default, character_maximum_length
       FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name LIKE 'directus\\_%'
      ORDER BY table_name, ordinal_position`,
  );
  const tables = {};
  for (const c of cols) {
    (tables[c.table_name] ??= []).push(
      `${c.column_name} ${c.data_type}${c.character_maximum_length ? `(${c.character_maximum_length})` : ''} ${c.is_nullable === 'YES' ? 'null' : 'not null'} default ${c.column_default}`,
    );
  }
  const cons = await q(
    `SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = current_schema() AND c.conrelid::regclass::text LIKE 'directus\\_%'
      ORDER BY 1, 2`,
  );
  for (const c of cons) (tables[c.tbl] ??= []).push(`constraint ${c.conname} ${c.def}`);
  const indexes = {};
  for (const i of await q(
    `SELECT indexname, tablename, indexdef FROM pg_indexes
      WHERE schemaname = current_schema() AND tablename LIKE 'directus\\_%' ORDER BY indexname`,
  )) {
    indexes[i.indexname] = `${i.tablename}: ${i.indexdef}`;
  }
  const rows = {};
  for (const t of Object.keys(tables)) {
    const r = await q(`SELECT * FROM "${t}" ORDER BY 1`);
    rows[t] = { count: r.length, digest: digest(r) };
  }
  await client.end();
  return { client: 'pg', tables, indexes, rows };
}

const snap =
  (process.env.DB_CLIENT || 'sqlite3') === 'pg'
    ? await pgSnapshot(process.env.DB_CONNECTION_STRING)
    : await sqliteSnapshot(process.env.DB_FILENAME);
process.stdout.write(JSON.stringify(snap, null, 1) + '\n');
