/**
 * The buckets input: S3-compatible object stores that serve the registry the host input's server
 * keeps, as a YAML list. Each entry names the endpoint, the bucket and a prefix in it, and the
 * environment variables that carry its credentials (filled from secrets in the step's env:).
 */
import { ActionError, oneLine } from '../common/errors.js';
import type { BucketSettings } from '../bucket/store.js';
import {
  listError,
  parseYamlList,
  readEntry,
  secretFromEnvironment,
  withSecrets,
  type SecretEnvironment,
} from './yaml-list.js';

/** The keys a bucket entry may have. */
export const BUCKET_KEYS = [
  'name',
  'endpoint',
  'bucket',
  'prefix',
  'region',
  'path-style',
  'access-key-id-env',
  'secret-access-key-env',
] as const;

/** Buckets in one run at most: each is an upload of every image file. */
export const MAX_BUCKETS = 4;

/** S3 bucket names (the rules AWS, R2, B2, Ceph and MinIO share). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** A prefix: path segments of plain characters, ending with "/". */
const PREFIX = /^([A-Za-z0-9._-]+\/)*$/;

const EXAMPLE =
  'For example:\n  buckets: |\n    - name: r2\n      endpoint: https://ACCOUNT.r2.cloudflarestorage.com\n      bucket: lxc-images\n' +
  '      access-key-id-env: R2_ACCESS_KEY_ID\n      secret-access-key-env: R2_SECRET_ACCESS_KEY\n' +
  "with R2_ACCESS_KEY_ID: ${{ secrets.R2_ACCESS_KEY_ID }} and R2_SECRET_ACCESS_KEY: ${{ secrets.R2_SECRET_ACCESS_KEY }} in the step's env:.";

const bucketsError = (message: string): ActionError => listError('buckets', message);

/** How the buckets input's list and its entries are read. */
const BUCKET_LIST = {
  input: 'buckets',
  entries: 'buckets',
  noun: 'bucket',
  keyHint: 'endpoint:, bucket: …',
  example: EXAMPLE,
};

/** The endpoint: an http(s) URL with no path, query or credentials. */
function parseEndpoint(text: string, label: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw bucketsError(`${label}: endpoint ${JSON.stringify(oneLine(text))} is not a URL; give https://host[:port].`);
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.username !== '' ||
    url.password !== '' ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== '' ||
    url.hash !== ''
  ) {
    throw bucketsError(
      `${label}: endpoint must be https://host[:port] (or http:// on a private network), with no path, query or ` +
        'user in it; the bucket goes in bucket: and the folder in prefix:.',
    );
  }
  return url;
}

function parseBoolean(text: string, key: string, label: string): boolean {
  const value = text.trim().toLowerCase();
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw bucketsError(`${label}: ${key} must be true or false.`);
}

/** Whether to use path-style URLs; a dotted bucket name in the host name would fail TLS. */
function pathStyle(value: string | undefined, bucket: string, endpoint: URL, label: string): boolean {
  const pathStyle = value === undefined ? true : parseBoolean(value, 'path-style', label);
  if (!pathStyle && bucket.includes('.') && endpoint.protocol === 'https:') {
    throw bucketsError(
      `${label}: path-style: false puts bucket ${bucket} in the host name, where its dots break the certificate ` +
        'check over HTTPS; use path-style: true, or a bucket name without dots.',
    );
  }
  return pathStyle;
}

/** The folders the action owns under a registry's prefix. */
const OWNED_FOLDERS = ['images/', 'streams/', '.lxc-publish/'];

/**
 * Where two prefixes of one bucket clash: '' for the same prefix, the owned folder of one that
 * holds the other, or undefined when each registry keeps to its own.
 */
function clashingFolder(a: string, b: string): string | undefined {
  if (a === b) return '';
  const [outer, inner] = a.length < b.length ? [a, b] : [b, a];
  if (!inner.startsWith(outer)) return undefined;
  return OWNED_FOLDERS.find((folder) => inner.slice(outer.length).startsWith(folder));
}

/** One entry of the list, checked. */
function readBucket(raw: unknown, position: number, env: SecretEnvironment): BucketSettings {
  const { entry, label } = readEntry(raw, position, { ...BUCKET_LIST, keys: BUCKET_KEYS, nullIsEmpty: true });
  for (const key of ['endpoint', 'bucket', 'access-key-id-env', 'secret-access-key-env'] as const) {
    if (entry[key] === undefined || entry[key].trim() === '') throw bucketsError(`${label} has no ${key}. ${EXAMPLE}`);
  }
  const endpoint = parseEndpoint(entry.endpoint as string, label);
  const bucket = (entry.bucket as string).trim();
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..')) {
    throw bucketsError(
      `${label}: bucket ${JSON.stringify(oneLine(bucket))} is not a bucket name (3 to 63 lower-case letters, digits, "." and "-").`,
    );
  }
  let prefix = (entry.prefix ?? '').trim().replace(/^\/+/, '');
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  if (!PREFIX.test(prefix) || prefix.split('/').some((part) => part === '.' || part === '..')) {
    throw bucketsError(
      `${label}: prefix ${JSON.stringify(oneLine(entry.prefix ?? ''))} must be a folder of letters, digits, ".", "_", "-" and "/" (such as lxc/), or empty.`,
    );
  }
  const region = (entry.region ?? 'us-east-1').trim();
  if (!/^[a-z0-9-]{1,32}$/.test(region)) {
    throw bucketsError(
      `${label}: region ${JSON.stringify(oneLine(region))} is not a region name (such as us-east-1, auto).`,
    );
  }
  return {
    name: entry.name ?? `${bucket}${prefix === '' ? '' : `/${prefix.replace(/\/$/, '')}`}`,
    endpoint: endpoint.origin,
    bucket,
    prefix,
    region,
    pathStyle: pathStyle(entry['path-style'], bucket, endpoint, label),
    accessKeyId: secretFromEnvironment(
      entry['access-key-id-env'] as string,
      'access-key-id-env',
      label,
      env,
      'buckets',
    ),
    secretAccessKey: secretFromEnvironment(
      entry['secret-access-key-env'] as string,
      'secret-access-key-env',
      label,
      env,
      'buckets',
    ),
  };
}

/**
 * The buckets input, read: [] when empty. `taken`: the names the servers of the fleet have
 * already (a bucket's name must differ from each).
 */
export function parseBuckets(
  text: string,
  taken: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): BucketSettings[] {
  if (text.trim() === '') return [];
  const document = parseYamlList(text, BUCKET_LIST);
  if (document.length > MAX_BUCKETS)
    throw bucketsError(`lists ${document.length} buckets; at most ${MAX_BUCKETS} are published to in one run.`);
  const buckets = withSecrets(env, (secrets) => document.map((raw, i) => readBucket(raw, i + 1, secrets)));
  const names = new Set(taken);
  for (const [k, bucket] of buckets.entries()) {
    if (names.has(bucket.name))
      throw bucketsError(
        `two members of the fleet are named ${bucket.name}; give each bucket a name of its own (name:).`,
      );
    names.add(bucket.name);
    for (const other of buckets.slice(0, k)) {
      const sameBucket =
        new URL(bucket.endpoint).host === new URL(other.endpoint).host && bucket.bucket === other.bucket;
      const clash = sameBucket ? clashingFolder(other.prefix, bucket.prefix) : undefined;
      if (clash !== undefined) {
        throw bucketsError(
          clash === ''
            ? `${other.name} and ${bucket.name} are the same bucket ${bucket.bucket} and prefix "${bucket.prefix}"; list each once.`
            : `${other.name} and ${bucket.name} share bucket ${bucket.bucket}, and one's prefix lies in the other's ` +
                `${clash} folder ("${other.prefix}" and "${bucket.prefix}"), which the action owns; give it a prefix elsewhere.`,
        );
      }
    }
  }
  return buckets;
}
