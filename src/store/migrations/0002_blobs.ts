/** Schema: blob store and layer records (owner: S3 retrieval, issue 3). */
export const BLOBS_SQL = `
-- not written yet
SELECT 1;
`;
