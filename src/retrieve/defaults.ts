/**
 * The default source coordinates, apart from the S3 client so that help text and option
 * parsing do not load the SDK.
 * @module
 */
/** The default bucket: the public one the images are published in. */
export const DEFAULT_BUCKET = "flyio-platform-hiring-challenge";
/** The default region. */
export const DEFAULT_REGION = "us-east-1";
/** The default key prefix under which each image is a directory. */
export const DEFAULT_PREFIX = "images/";
/**
 * The default limit on pages of one listing: an image's prefix fits in one page of 1,000 keys;
 * a server that hands out page after page (tiny or empty ones) is stopped here.
 */
export const DEFAULT_MAX_PAGES = 100;
