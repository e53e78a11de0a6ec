/**
 * Image names: the directory under the bucket prefix that holds an image's layers.
 *
 * @example
 * ```ts
 * import { parseImageName } from "./name.ts";
 * parseImageName("golang"); // "golang"
 * parseImageName("../etc"); // throws InvalidInputError (exit 65)
 * ```
 * @module
 */
import { InvalidInputError } from "../errors.ts";
import { NAME_RULES } from "../names.ts";

/** What an image name must look like: it becomes one path segment of an S3 key. */
export const IMAGE_NAME_PATTERN: RegExp = NAME_RULES.image.pattern;

/** True when `name` is a valid image name. */
export function isImageName(name: string): boolean {
  return IMAGE_NAME_PATTERN.test(name);
}

/**
 * Return `name` when it is a valid image name; otherwise throw an {@linkcode InvalidInputError}
 * that quotes it (escaped, so control characters cannot reach a terminal).
 *
 * @example
 * ```ts
 * import { parseImageName } from "./name.ts";
 * const image = parseImageName("python");
 * ```
 */
export function parseImageName(name: string): string {
  if (isImageName(name)) return name;
  throw new InvalidInputError(
    `invalid image name ${
      JSON.stringify(name)
    }: expected 1-63 characters of a-z 0-9 . _ -, starting with a letter or digit`,
    { details: { image: name } },
  );
}
