/**
 * Defaults of the agent that commands print in their help, apart from the runtime so that
 * printing them loads nothing else.
 * @module
 */

/** The default virtual size of a chain device: room for the largest image's root filesystem. */
export const DEFAULT_DEVICE_SIZE = 8 * 1024 ** 3;
