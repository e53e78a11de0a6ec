/**
 * Defaults of the agent that commands print in their help, apart from the runtime so that
 * printing them loads nothing else.
 * @module
 */

/** The default virtual size of a chain device: room for the largest image's root filesystem. */
export const DEFAULT_DEVICE_SIZE = 8 * 1024 ** 3;

/** Where state lives when neither `--state-dir` nor `THINIMAGE_STATE_DIR` says otherwise. */
export const DEFAULT_STATE_DIR = "/var/lib/thinimage";
