/**
 * Schema 1: durable state-machine runs (src/engine) and their append-only event log.
 *
 * `runs_single_flight` is what makes single flight hold across processes: a second active
 * run of one (machine, resource) cannot be inserted. `owner`/`lease_until` say who drives an
 * active run; both are NULL when nobody does.
 * @module
 */
export const RUNS_SQL = `
CREATE TABLE runs (
  id            TEXT PRIMARY KEY,
  machine       TEXT NOT NULL,
  resource_id   TEXT NOT NULL,
  request       TEXT NOT NULL,
  response      TEXT,
  state         TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('active', 'done', 'failed')),
  attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error    TEXT,
  owner         TEXT,
  lease_until   INTEGER,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  CHECK (status = 'active' OR owner IS NULL)
) STRICT;
CREATE UNIQUE INDEX runs_single_flight ON runs (machine, resource_id) WHERE status = 'active';
CREATE INDEX runs_active_by_machine ON runs (machine, created_at) WHERE status = 'active';
CREATE INDEX runs_by_resource ON runs (resource_id, created_at);
CREATE INDEX runs_by_created ON runs (created_at);

CREATE TABLE run_events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  kind       TEXT NOT NULL CHECK (kind IN ('start', 'resume', 'begin', 'complete', 'error',
               'retry', 'abort', 'cancel', 'finalizer_error', 'finish')),
  state      TEXT,
  attempt    INTEGER,
  data       TEXT,
  at         INTEGER NOT NULL
) STRICT;
CREATE INDEX run_events_by_run ON run_events (run_id, seq);
`;
