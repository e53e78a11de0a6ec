/**
 * Limits on what a listing may make an image, apart from the manifest module so that help
 * text and option parsing load nothing else (the manifest's hashing loads node:crypto).
 * @module
 */

/** The default layer limit: Docker's overlay driver stops at 128 layers as well. */
export const DEFAULT_MAX_LAYERS = 128;

/**
 * The default limit on keys under one image's prefix: an image is at most 128 layers, so this
 * is far above any real one, and it keeps a prefix stuffed with junk from costing minutes.
 */
export const DEFAULT_MAX_KEYS = 10_000;
