/** Schema: thin devices, ids and intents (owner: device-mapper, issue 5). */
export const DEVICES_SQL = `
-- not written yet
SELECT 1;
`;
