/** Schema 1: durable state-machine runs and their append-only event log. */
export const RUNS_SQL = `
CREATE TABLE runs (
  id            TEXT PRIMARY KEY,
  machine       TEXT NOT NULL,
  resource_id   TEXT NOT NULL,
  request       TEXT NOT NULL,
  response      TEXT,
  state         TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('active', 'done', 'failed', 'aborted')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  last_error    TEXT,
  owner         TEXT,
  lease_until   INTEGER,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX runs_single_flight ON runs (machine, resource_id) WHERE status = 'active';
CREATE INDEX runs_by_resource ON runs (resource_id, created_at);

CREATE TABLE run_events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  kind       TEXT NOT NULL,
  state      TEXT,
  attempt    INTEGER,
  data       TEXT,
  at         INTEGER NOT NULL
) STRICT;
CREATE INDEX run_events_by_run ON run_events (run_id, seq);
`;
