/**
 * The public check's pure parts: what must be served for a fingerprint, what each answer says is
 * wrong, and the step's error with a hint per kind of problem.
 */
import { describeError } from '../common/errors.js';
import { findFingerprint, type ImagesIndex } from '../simplestreams/images-index.js';

const PUBLIC_URL_INPUT = 'public-url';

/** A file of the published version, as images.json names it (relative to the registry root). */
export interface PublicFile {
  path: string;
  size: number;
}

export interface ExpectedVersion {
  product: string;
  serial: string;
  /** Each path once (LXD items point at the same files as the Incus ones). */
  files: PublicFile[];
}

/** What must be served for `fingerprint`, per images.json; undefined when it does not list it. */
export function expectedVersion(images: ImagesIndex, fingerprint: string): ExpectedVersion | undefined {
  const found = findFingerprint(images, fingerprint);
  if (!found) return undefined;
  return {
    product: found.product,
    serial: found.serial,
    files: found.files.map(({ path, size }) => ({ path, size })),
  };
}

/** The products index.json names (in any of its entries). */
export function indexProducts(document: unknown): string[] {
  const entries = (document as { index?: unknown } | null)?.index;
  if (typeof entries !== 'object' || entries === null) return [];
  const products: string[] = [];
  for (const entry of Object.values(entries as Record<string, unknown>)) {
    const list = (entry as { products?: unknown } | null)?.products;
    if (Array.isArray(list)) products.push(...list.filter((name): name is string => typeof name === 'string'));
  }
  return products;
}

/**
 * What can be wrong, by kind: `stale` the indexes do not list the image (yet), `missing` a 404,
 * `size` a file of the wrong length, `http` another status, `tls` the TLS handshake or
 * certificate, `network` no connection, `invalid` an index that is not the expected JSON.
 */
export type ProblemKind = 'stale' | 'missing' | 'size' | 'http' | 'tls' | 'network' | 'invalid';

export interface Problem {
  kind: ProblemKind;
  message: string;
  /** For `tls`: whether it is about the protocol version (TLS 1.3) rather than the certificate. */
  tlsVersion?: boolean;
}

/** A status other than 200 on `what`. */
export function statusProblem(what: string, status: number): Problem {
  return status === 404
    ? { kind: 'missing', message: `${what}: not served (HTTP 404)` }
    : { kind: 'http', message: `${what}: HTTP ${status}` };
}

/** What a HEAD answer for `file` says is wrong, if anything. */
export function fileProblem(file: PublicFile, status: number, contentLength: string | undefined): Problem | undefined {
  if (status !== 200) return statusProblem(file.path, status);
  if (contentLength === undefined || !/^\d+$/.test(contentLength.trim())) {
    return { kind: 'size', message: `${file.path}: answered without a Content-Length (expected ${file.size} bytes)` };
  }
  const served = Number(contentLength.trim());
  if (served !== file.size) {
    return { kind: 'size', message: `${file.path}: wrong size, ${served} bytes served instead of ${file.size}` };
  }
  return undefined;
}

/** What the indexes say is missing, given index.json's products and the version images.json lists. */
export function indexProblems(
  fingerprint: string,
  products: string[],
  version: ExpectedVersion | undefined,
): Problem[] {
  if (!version) {
    return [
      { kind: 'stale', message: `streams/v1/images.json does not list fingerprint ${fingerprint} (not served yet)` },
    ];
  }
  if (!products.includes(version.product)) {
    return [
      { kind: 'stale', message: `streams/v1/index.json does not name product ${version.product} (not served yet)` },
    ];
  }
  return [];
}

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|EPROTO$)|CERT|SIGNATURE|ISSUER/;
const TLS_VERSION =
  /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS|WRONG_VERSION|protocol version|unsupported protocol/i;

/** A failed request (no HTTP answer) on `what`, as a problem. */
export function requestProblem(what: string, error: unknown): Problem {
  const code = (error as { code?: unknown } | null)?.code;
  // Errors of node's own modules may come from another realm (test runners): no instanceof.
  const message = (error as { message?: unknown } | null)?.message;
  const text = typeof message === 'string' ? message : describeError(error);
  const detail = typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
  if ((typeof code === 'string' && TLS_CODE.test(code)) || /\b(ssl|tls|certificate)\b/i.test(text)) {
    return {
      kind: 'tls',
      message: `${what}: TLS error: ${detail}`,
      tlsVersion: TLS_VERSION.test(`${String(code)} ${text}`),
    };
  }
  return { kind: 'network', message: `${what}: ${detail}` };
}

const HINTS: Record<ProblemKind, string> = {
  stale:
    'The index on the server was updated over SSH; a CDN or cache in front of the registry may still serve an ' +
    'older copy of streams/v1/*.json. Purge streams/v1/ in the CDN or shorten its cache time for those files, ' +
    'or raise public-check-timeout.',
  missing:
    "Check that public-url is the address of simplestreams-dir (the web server's root for the registry, with " +
    'streams/ and images/ under it), and purge the CDN if it cached a 404.',
  size:
    'A cache is serving another (older or truncated) copy of the file, or the file on the server is damaged: ' +
    'purge the CDN, or publish again.',
  http: "Check the web server's configuration for streams/ and images/ (access rules, redirects, authentication).",
  network: 'Check the host name, DNS and firewall: the runner must reach the registry as the public does.',
  invalid:
    "The web server answered something other than the registry's JSON: check that public-url serves simplestreams-dir.",
  tls: '',
};

const TLS_VERSION_HINT =
  'The Incus client requires TLS 1.3: enable it on the web server (nginx: ssl_protocols TLSv1.2 TLSv1.3;).';
const TLS_CERT_HINT =
  'The certificate must be trusted by a stock client: issued by a public CA (or a CA the runner trusts through ' +
  'NODE_EXTRA_CA_CERTS), valid now, for this host name, and served with its full chain (nginx: fullchain.pem).';

/** The step's error when the check gave up: what was wrong last, and what to do about it. */
export function timeoutMessage(
  url: string,
  fingerprint: string,
  timeoutSeconds: number,
  attempts: number,
  problems: readonly Problem[],
): string {
  const shown = problems.slice(0, 5).map((problem) => problem.message);
  if (problems.length > shown.length) shown.push(`and ${problems.length - shown.length} more`);
  const kinds = new Set(problems.map((problem) => problem.kind));
  const hints = [...kinds].filter((kind) => kind !== 'tls').map((kind) => HINTS[kind]);
  const tls = problems.filter((problem) => problem.kind === 'tls');
  if (tls.some((problem) => problem.tlsVersion)) hints.push(TLS_VERSION_HINT);
  if (tls.some((problem) => !problem.tlsVersion)) hints.push(TLS_CERT_HINT, TLS_VERSION_HINT);
  const tries = attempts === 1 ? 'checked once' : `checked ${attempts} times over ${timeoutSeconds} s`;
  return (
    `${PUBLIC_URL_INPUT}: ${url} does not serve image ${fingerprint} (${tries}, public-check-timeout ` +
    `${timeoutSeconds} s). Last problems: ${shown.join('; ')}. ${[...new Set(hints)].join(' ')}`
  ).trim();
}
