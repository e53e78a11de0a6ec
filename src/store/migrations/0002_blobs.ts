/**
 * Schema 2: the content-addressed blob store (written by S3 retrieval).
 *
 * `blobs` lists every verified blob file under `blobs/sha256/<hex>`; a row exists only after
 * the file was renamed into place. `blob_sources` remembers which S3 object (ETag and size)
 * produced which blob, so a layer listed again, under any image, is not downloaded again.
 */
export const BLOBS_SQL = `
CREATE TABLE blobs (
  sha256      TEXT PRIMARY KEY CHECK (length(sha256) = 64),
  size        INTEGER NOT NULL CHECK (size >= 0),
  format      TEXT NOT NULL CHECK (format IN ('tar', 'gzip')),
  created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE blob_sources (
  etag        TEXT NOT NULL,
  size        INTEGER NOT NULL,
  sha256      TEXT NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
  first_key   TEXT NOT NULL,
  seen_at     INTEGER NOT NULL,
  PRIMARY KEY (etag, size)
) STRICT;
CREATE INDEX blob_sources_by_blob ON blob_sources (sha256);
`;
