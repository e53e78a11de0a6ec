/**
 * Schema 5: what is known of a stored blob once checked, so unpacking it need not check it
 * again.
 *
 * `blobs.identity` is the blob file's identity (device, inode, size, times) right after its
 * digest was verified and it was renamed into place: while the file still has it, it still
 * holds the verified bytes, and a one-pass unpack need not hash it again. `blob_layers` keeps
 * a validated layer's figures: whiteouts (none spares the applier a stat per file) and the
 * bytes it unpacks to (checked against the device before anything is written).
 */
export const BLOB_CHECKS_SQL = `
ALTER TABLE blobs ADD COLUMN identity TEXT;

CREATE TABLE blob_layers (
  sha256          TEXT PRIMARY KEY REFERENCES blobs (sha256) ON DELETE CASCADE,
  entries         INTEGER NOT NULL CHECK (entries >= 0),
  whiteouts       INTEGER NOT NULL CHECK (whiteouts >= 0),
  unpacked_bytes  INTEGER NOT NULL CHECK (unpacked_bytes >= 0),
  validated_at    INTEGER NOT NULL
) STRICT;
`;
