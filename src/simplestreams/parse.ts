/**
 * Reading images.json from the server, which is untrusted: every part this action uses is checked
 * (products, versions, items and their fields) before anything uses it. Pure.
 */
import type { ImagesIndex } from './images-index.js';

/** Thrown for an images.json that is not a simplestreams index this action can work on. */
export class InvalidIndexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidIndexError';
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const SHA256 = /^[0-9a-f]{64}$/;
/** Clients read a version key's first 8 characters as a date (incus products.go). */
const VERSION_KEY = /^[0-9]{8}[0-9A-Za-z_:.-]{0,24}$/;
const ARCH = /^[A-Za-z0-9_.-]{1,32}$/;

/** A path an item may name: relative, under the tree, without `..`, in plain characters. */
const ITEM_PATH = /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._+/-]+$/;

/** The entries of an object, refusing a `__proto__` key (assigning it would change a prototype). */
function entriesOf(value: Record<string, unknown>, where: string): [string, unknown][] {
  const entries = Object.entries(value);
  if (entries.some(([key]) => key === '__proto__')) throw new InvalidIndexError(`${where} has a key named __proto__`);
  return entries;
}

function checkItem(item: unknown, where: string): void {
  if (!isObject(item)) throw new InvalidIndexError(`${where} is not an object`);
  entriesOf(item, where);
  for (const field of ['ftype', 'path', 'sha256'] as const) {
    if (typeof item[field] !== 'string') throw new InvalidIndexError(`${where} has no "${field}" string`);
  }
  if (!SHA256.test(item['sha256'] as string)) throw new InvalidIndexError(`${where}.sha256 is not a sha256 in hex`);
  if (!ITEM_PATH.test(item['path'] as string)) {
    throw new InvalidIndexError(`${where} names the path ${JSON.stringify(item['path'])}, outside the registry tree`);
  }
  const size = item['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidIndexError(`${where} has no "size" as a whole number of bytes`);
  }
  for (const [field, value] of Object.entries(item)) {
    if (/^combined_/.test(field) && typeof value !== 'string')
      throw new InvalidIndexError(`${where}.${field} is not a string`);
  }
}

function checkProduct(product: unknown, where: string): void {
  if (!isObject(product)) throw new InvalidIndexError(`${where} is not an object`);
  entriesOf(product, where);
  for (const field of ['aliases', 'arch', 'os', 'release', 'variant']) {
    if (product[field] !== undefined && typeof product[field] !== 'string') {
      throw new InvalidIndexError(`${where}.${field} is not a string`);
    }
  }
  if (product['arch'] !== undefined && !ARCH.test(product['arch'] as string)) {
    throw new InvalidIndexError(`${where}.arch is not an architecture name`);
  }
  const versions = product['versions'];
  if (!isObject(versions)) throw new InvalidIndexError(`${where} has no "versions" object`);
  for (const [serial, version] of entriesOf(versions, `${where}.versions`)) {
    const at = `${where}.versions[${JSON.stringify(serial)}]`;
    if (!VERSION_KEY.test(serial)) throw new InvalidIndexError(`${at}: the version key is not a serial (YYYYMMDD…)`);
    if (!isObject(version)) throw new InvalidIndexError(`${at} is not an object`);
    entriesOf(version, at);
    const items = version['items'];
    if (!isObject(items)) throw new InvalidIndexError(`${at} has no "items" object`);
    for (const [key, item] of entriesOf(items, `${at}.items`)) checkItem(item, `${at}.items[${JSON.stringify(key)}]`);
  }
}

/**
 * Parses images.json and checks every part this action reads (products, versions, items and
 * their fields), so that a damaged or hostile index is refused with the entry at fault named,
 * never half-used. Throws InvalidIndexError (or the JSON parser's SyntaxError).
 */
export function parseImagesIndex(text: string): ImagesIndex {
  const document: unknown = JSON.parse(text);
  if (!isObject(document)) throw new InvalidIndexError('images.json is not a JSON object');
  entriesOf(document, 'images.json');
  const products = document['products'];
  if (!isObject(products)) throw new InvalidIndexError('images.json has no "products" object');
  for (const [key, product] of entriesOf(products, 'images.json products')) {
    checkProduct(product, `images.json products[${JSON.stringify(key)}]`);
  }
  return document as ImagesIndex;
}
