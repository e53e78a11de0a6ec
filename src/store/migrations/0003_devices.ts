/**
 * Schema: thin pools, thin devices with their write-ahead intents, and thin ids that must
 * never be handed out again (written by the device-mapper layer).
 *
 * A device row is written before every dm message (state 'creating' or 'removing', with the
 * thin id and the owning process) and updated after it, so a crash between the two leaves a
 * row that reconcile can finish or roll back. Names are global in /dev/mapper, hence the key.
 */
export const DEVICES_SQL = `
CREATE TABLE dm_pools (
  name          TEXT PRIMARY KEY,
  adopted       INTEGER NOT NULL CHECK (adopted IN (0, 1)),
  meta_file     TEXT,
  data_file     TEXT,
  table_line    TEXT NOT NULL,
  block_sectors INTEGER NOT NULL CHECK (block_sectors >= 128 AND block_sectors % 128 = 0),
  data_sectors  INTEGER NOT NULL CHECK (data_sectors > 0),
  next_thin_id  INTEGER NOT NULL DEFAULT 1 CHECK (next_thin_id BETWEEN 0 AND 16777215),
  created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE thin_devices (
  name          TEXT PRIMARY KEY CHECK (name GLOB 'thinimage-?*'),
  pool          TEXT NOT NULL REFERENCES dm_pools (name),
  thin_id       INTEGER NOT NULL CHECK (thin_id BETWEEN 0 AND 16777215),
  size_bytes    INTEGER NOT NULL CHECK (size_bytes > 0 AND size_bytes % 512 = 0),
  origin        TEXT,
  state         TEXT NOT NULL
                CHECK (state IN ('creating', 'created', 'active', 'removing', 'faulty')),
  intent_owner  TEXT,
  formatted     INTEGER NOT NULL DEFAULT 0 CHECK (formatted IN (0, 1)),
  last_error    TEXT,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  UNIQUE (pool, thin_id)
) STRICT;

CREATE TABLE thin_faulty_ids (
  pool     TEXT NOT NULL REFERENCES dm_pools (name),
  thin_id  INTEGER NOT NULL CHECK (thin_id BETWEEN 0 AND 16777215),
  reason   TEXT NOT NULL,
  at       INTEGER NOT NULL,
  PRIMARY KEY (pool, thin_id)
) STRICT;
`;
