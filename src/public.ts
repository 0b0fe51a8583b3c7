/**
 * The registry as the public sees it: the `public-url` and `remote-name` inputs, the check that
 * the published image is served there over HTTPS (through whatever CDN or cache sits in front),
 * and the client commands the job summary shows.
 *
 * The check uses node:https rather than fetch so that it can demand what the Incus client demands:
 * TLS 1.3 and a certificate the system trusts (NODE_EXTRA_CA_CERTS adds CAs, as for fetch).
 */
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActionError, describeError } from './errors.js';
import { quoteArg } from './shell.js';
import { findFingerprint, parseImagesIndex, type ImagesIndex } from './simplestreams.js';

const PUBLIC_URL_INPUT = 'public-url';
const REMOTE_NAME_INPUT = 'remote-name';

// ------------------------------------------------------------------------------------------------
// Inputs

/**
 * The registry's public address as the clients use it: `https://host[:port][/path]`, without a
 * trailing slash. Blank text gives '' (no public URL). Only https: `incus remote add
 * --protocol=simplestreams` refuses anything else ("Only https URLs are supported"), even on
 * loopback, so an http URL could never be launched from.
 */
export function validatePublicUrl(text: string): string {
  const value = text.trim();
  if (value === '') return '';
  const shown = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  const fail = (why: string): never => {
    throw new ActionError(`${PUBLIC_URL_INPUT}: "${shown}" ${why}`, PUBLIC_URL_INPUT);
  };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail("is not a URL. Give the registry's HTTPS address, for example https://lxc.example.com.");
  }
  if (url.protocol !== 'https:') {
    fail(
      `is not an https:// address. Incus and LXD clients only add simplestreams remotes over HTTPS; ` +
        `serve the registry with TLS and give its https:// address.`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    fail(
      'holds a user name or password. Give the public address without credentials (it is shown in the job summary).',
    );
  }
  if (url.search !== '' || url.hash !== '' || /[?#]/.test(value)) {
    fail("has a query (?...) or fragment (#...). Give the address of the registry's root directory only.");
  }
  const path = url.pathname.replace(/\/+$/, '');
  if (/(^|\/)streams(\/|$)/.test(path)) {
    fail(
      "points inside streams/. Give the registry's root, the directory that holds streams/ and images/ " +
        '(for example https://lxc.example.com, not https://lxc.example.com/streams/v1/index.json).',
    );
  }
  return `${url.protocol}//${url.host}${path}`;
}

/** Remotes that stock incus or lxc clients already have: `remote add` of these fails. */
const RESERVED_REMOTES = new Set([
  'local',
  'images',
  'ubuntu',
  'ubuntu-daily',
  'ubuntu-minimal',
  'ubuntu-minimal-daily',
]);

/** Host labels that say "an image server" rather than whose it is. */
const GENERIC_LABELS = new Set([
  'lxc',
  'lxd',
  'incus',
  'image',
  'images',
  'img',
  'www',
  'registry',
  'containers',
  'simplestreams',
  'streams',
  'cdn',
  'dl',
  'download',
  'downloads',
  'mirror',
  'mirrors',
  'repo',
  'repos',
  'static',
  'files',
]);

const FALLBACK_REMOTE = 'registry';

/**
 * The remote name the summary's commands use when `remote-name` is empty, from the URL's host:
 * the host's labels without the last one (the TLD), lowercased, each reduced to [a-z0-9-]; the
 * first that is not a generic word (lxc, lxd, incus, images, www, registry, cdn, mirror, …) nor
 * a remote stock clients already have (local, images, ubuntu…). Without one, the first label that
 * is not such a remote; for an IP address, `localhost` or nothing usable: `registry`.
 *
 * https://lxc.crynux.io → crynux; https://images.example.co.uk → example;
 * https://crynux.io → crynux; https://lxc.io → lxc; https://127.0.0.1:8443 → registry.
 */
export function defaultRemoteName(url: string): string {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/\.+$/, '');
  } catch {
    return FALLBACK_REMOTE;
  }
  if (host === '' || host === 'localhost' || host.startsWith('[') || /^[0-9.]+$/.test(host)) return FALLBACK_REMOTE;
  const labels = host.split('.');
  const candidates = (labels.length > 1 ? labels.slice(0, -1) : labels)
    .map((label) => label.replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, ''))
    .filter((label) => label !== '' && !RESERVED_REMOTES.has(label));
  return candidates.find((label) => !GENERIC_LABELS.has(label)) ?? candidates[0] ?? FALLBACK_REMOTE;
}

/**
 * A remote name given in `remote-name`, trimmed. Incus refuses ':' (it separates remote and
 * image) and a name is also a file name in the client's config ('/'); the summary's commands must
 * paste into a shell as they are. So: letters, digits, '.', '_' and '-', starting with a letter
 * or digit, at most 64 characters, and not a remote stock clients already define.
 */
export function validateRemoteName(name: string): string {
  const value = name.trim();
  const shown = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  if (value === '') {
    throw new ActionError(
      `${REMOTE_NAME_INPUT}: give a name, or leave the input out to derive one from public-url.`,
      REMOTE_NAME_INPUT,
    );
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(value)) {
    throw new ActionError(
      `${REMOTE_NAME_INPUT}: "${shown}" cannot be used as a remote name. Use up to 64 letters, digits, '.', '_' ` +
        `and '-', starting with a letter or digit (no ':', '/' or blanks), for example crynux.`,
      REMOTE_NAME_INPUT,
    );
  }
  if (RESERVED_REMOTES.has(value.toLowerCase())) {
    throw new ActionError(
      `${REMOTE_NAME_INPUT}: "${shown}" is a remote that incus or lxc clients already have ` +
        `(${[...RESERVED_REMOTES].join(', ')}), so \`remote add\` would fail. Choose another name.`,
      REMOTE_NAME_INPUT,
    );
  }
  return value;
}

// ------------------------------------------------------------------------------------------------
// Client commands

/** What the launch line needs of a publish result. */
export interface LaunchTarget {
  fingerprint: string;
  aliases: readonly string[];
  imageType: 'container' | 'virtual-machine';
}

export const INSTANCE_PLACEHOLDER = 'my-instance';

/**
 * Copy-paste lines for both clients: add the registry as a remote, launch the image (by its
 * first alias, or by the fingerprint's first 12 digits, as `incus image list` shows it). Every
 * word is shell-quoted when it needs to be.
 */
export function clientCommands(remote: string, url: string, result: LaunchTarget): { incus: string[]; lxc: string[] } {
  const reference = result.aliases[0] ?? result.fingerprint.slice(0, 12);
  const lines = (client: string): string[] => [
    [client, 'remote', 'add', remote, url, '--protocol=simplestreams'].map(quoteArg).join(' '),
    [
      client,
      'launch',
      `${remote}:${reference}`,
      INSTANCE_PLACEHOLDER,
      ...(result.imageType === 'virtual-machine' ? ['--vm'] : []),
    ]
      .map(quoteArg)
      .join(' '),
  ];
  return { incus: lines('incus'), lxc: lines('lxc') };
}

// ------------------------------------------------------------------------------------------------
// The public check: pure parts

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
  const version = found ? images.products[found.product]?.versions?.[found.serial] : undefined;
  if (!found || !version) return undefined;
  const files = new Map<string, number>();
  for (const item of Object.values(version.items)) if (!files.has(item.path)) files.set(item.path, item.size);
  return {
    product: found.product,
    serial: found.serial,
    files: [...files].map(([path, size]) => ({ path, size })),
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

// ------------------------------------------------------------------------------------------------
// The public check: network

export interface PublicCheckOptions {
  /** The validated public URL (no trailing slash). */
  url: string;
  fingerprint: string;
  /** How long to keep retrying; 0 checks once. */
  timeoutSeconds: number;
  log: (line: string) => void;
  /** Pause between attempts (default 5 s). */
  retryDelayMs?: number;
}

export interface PublicCheckResult {
  url: string;
  fingerprint: string;
  product: string;
  serial: string;
  /** The files checked (each answered 200 with the size images.json gives). */
  files: PublicFile[];
  attempts: number;
  elapsedSeconds: number;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The most a JSON index may weigh here; a registry's images.json is far smaller. */
const MAX_BODY_BYTES = 64 << 20;
const REQUEST_TIMEOUT_MS = 30_000;

/** One request. */
function requestOnce(agent: https.Agent, url: string, method: 'GET' | 'HEAD', timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        agent,
        headers: {
          // Ask every cache on the way to revalidate; no cache-busting query: the check must see
          // what clients, which send none, are served.
          'Cache-Control': 'no-cache',
          Pragma: 'no-cache',
          // Content-Length must be the file's own length, not that of a compressed encoding.
          'Accept-Encoding': 'identity',
          'User-Agent': 'lxc-publish',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_BODY_BYTES) req.destroy(new Error(`the answer is larger than ${MAX_BODY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end();
  });
}

const MAX_REDIRECTS = 5;

/** A request that follows redirects to https addresses, as the clients (Go's HTTP client) do. */
async function request(agent: https.Agent, url: string, method: 'GET' | 'HEAD', timeoutMs: number): Promise<Answer> {
  let target = url;
  for (let redirects = 0; ; redirects++) {
    const answer = await requestOnce(agent, target, method, timeoutMs);
    const location = answer.headers.location;
    if (![301, 302, 303, 307, 308].includes(answer.status) || !location || redirects >= MAX_REDIRECTS) return answer;
    target = new URL(location, target).href;
    if (!target.startsWith('https://')) throw new Error(`redirected to ${target}, which is not an https:// address`);
  }
}

type Fetched = { ok: true; text: string } | { ok: false; problem: Problem };

async function getText(agent: https.Agent, base: string, path: string, timeoutMs: number): Promise<Fetched> {
  try {
    const answer = await request(agent, `${base}/${path}`, 'GET', timeoutMs);
    return answer.status === 200
      ? { ok: true, text: answer.body }
      : { ok: false, problem: statusProblem(path, answer.status) };
  } catch (error) {
    return { ok: false, problem: requestProblem(path, error) };
  }
}

/** One pass over everything a client needs; the problems found, and the version when listed. */
async function checkOnce(
  agent: https.Agent,
  url: string,
  fingerprint: string,
  timeoutMs: number,
): Promise<{ problems: Problem[]; version?: ExpectedVersion }> {
  const [index, images] = await Promise.all([
    getText(agent, url, 'streams/v1/index.json', timeoutMs),
    getText(agent, url, 'streams/v1/images.json', timeoutMs),
  ]);
  if (!index.ok || !images.ok) {
    return { problems: [index, images].flatMap((fetched) => (fetched.ok ? [] : [fetched.problem])) };
  }
  let products: string[];
  try {
    products = indexProducts(JSON.parse(index.text));
  } catch {
    return { problems: [{ kind: 'invalid', message: 'streams/v1/index.json: not JSON' }] };
  }
  let parsed: ImagesIndex;
  try {
    parsed = parseImagesIndex(images.text);
  } catch (error) {
    return { problems: [{ kind: 'invalid', message: `streams/v1/images.json: ${describeError(error)}` }] };
  }
  const version = expectedVersion(parsed, fingerprint);
  const listed = indexProblems(fingerprint, products, version);
  if (listed.length > 0 || !version) return { problems: listed };
  const answers = await Promise.all(
    version.files.map(async (file) => {
      try {
        const answer = await request(agent, `${url}/${file.path}`, 'HEAD', timeoutMs);
        const length = answer.headers['content-length'];
        return fileProblem(file, answer.status, Array.isArray(length) ? length[0] : length);
      } catch (error) {
        return requestProblem(file.path, error);
      }
    }),
  );
  return { problems: answers.filter((problem): problem is Problem => problem !== undefined), version };
}

/**
 * Checks, over HTTPS as a client would, that the registry at `url` serves the image: index.json
 * names its product, images.json lists its fingerprint, and each of its files answers a HEAD
 * with 200 and the size images.json gives. Retries every `retryDelayMs` until `timeoutSeconds`
 * have passed, the last attempt at the deadline (a CDN may serve cached indexes for a while),
 * logging what is still missing; then
 * throws an ActionError (input public-url) saying what was wrong last and how to fix it.
 */
export async function checkPublicRegistry(options: PublicCheckOptions): Promise<PublicCheckResult> {
  const { url, fingerprint, log } = options;
  const retryDelayMs = options.retryDelayMs ?? 5000;
  const started = Date.now();
  const deadline = started + Math.max(0, options.timeoutSeconds) * 1000;
  // TLS 1.3 at least, as the Incus client demands; keep-alive for the few requests of a pass.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, minVersion: 'TLSv1.3' });
  let previous = '';
  try {
    for (let attempt = 1; ; attempt++) {
      const timeoutMs = Math.min(REQUEST_TIMEOUT_MS, Math.max(5000, deadline - Date.now()));
      const { problems, version } = await checkOnce(agent, url, fingerprint, timeoutMs);
      const elapsedSeconds = Math.round((Date.now() - started) / 100) / 10;
      if (problems.length === 0 && version) {
        log(
          `${url} serves ${fingerprint} (${version.product} ${version.serial}): index.json, images.json and ` +
            `${version.files.length} file${version.files.length === 1 ? '' : 's'} with the right sizes` +
            (attempt > 1 ? ` (after ${attempt} attempts, ${elapsedSeconds} s)` : ''),
        );
        return { url, fingerprint, ...version, attempts: attempt, elapsedSeconds };
      }
      if (Date.now() >= deadline) {
        throw new ActionError(
          timeoutMessage(url, fingerprint, options.timeoutSeconds, attempt, problems),
          PUBLIC_URL_INPUT,
        );
      }
      const summary = problems.map((problem) => problem.message).join('; ');
      const left = Math.ceil((deadline - Date.now()) / 1000);
      log(
        summary === previous
          ? `Still not served (attempt ${attempt}, ${left} s left)`
          : `Not served yet (attempt ${attempt}, ${left} s left): ${summary}`,
      );
      previous = summary;
      // The last attempt runs at the deadline.
      await sleep(Math.max(0, Math.min(retryDelayMs, deadline - Date.now())));
    }
  } finally {
    agent.destroy();
  }
}
