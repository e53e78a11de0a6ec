/** Schema: images, layer chains and activations (owner: end to end, issue 6). */
export const IMAGES_SQL = `
-- not written yet
SELECT 1;
`;
