/**
 * Schema 4: images, their layers, the layer chains (one thin device each) and activations.
 *
 * A chain row exists from the moment its device is planned; `state` says how far it got:
 * 'applying' (device being made and filled: its content counts for nothing) or 'sealed'
 * (complete, synced, never written again). An image is 'ready' when its top chain is sealed.
 */
export const IMAGES_SQL = `
CREATE TABLE images (
  name            TEXT PRIMARY KEY,
  manifest_digest TEXT NOT NULL,
  manifest        TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pulling', 'ready', 'failed')),
  top_chain       TEXT,
  error           TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE image_layers (
  image     TEXT NOT NULL REFERENCES images (name) ON DELETE CASCADE,
  idx       INTEGER NOT NULL,
  key       TEXT NOT NULL,
  size      INTEGER NOT NULL,
  etag      TEXT NOT NULL,
  sha256    TEXT,
  chain_id  TEXT,
  PRIMARY KEY (image, idx)
) STRICT;
CREATE INDEX image_layers_by_chain ON image_layers (chain_id);
CREATE INDEX image_layers_by_sha ON image_layers (sha256);

CREATE TABLE chains (
  chain_id        TEXT PRIMARY KEY,
  parent_chain_id TEXT,
  layer_sha256    TEXT NOT NULL,
  device          TEXT NOT NULL UNIQUE,
  state           TEXT NOT NULL CHECK (state IN ('applying', 'sealed')),
  unpacked_bytes  INTEGER,
  created_at      INTEGER NOT NULL,
  sealed_at       INTEGER
) STRICT;

CREATE TABLE activations (
  name            TEXT PRIMARY KEY,
  image           TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  chain_id        TEXT NOT NULL,
  device          TEXT NOT NULL UNIQUE,
  created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX activations_by_image ON activations (image);
`;
