/**
 * The check that the published image is served at public-url over HTTPS, as clients fetch it
 * (through whatever CDN or cache sits in front).
 *
 * The check uses node:https rather than fetch so that it can demand what the Incus client demands:
 * TLS 1.3 and a certificate the system trusts (NODE_EXTRA_CA_CERTS adds CAs, as for fetch).
 * HTTPS_PROXY and NO_PROXY are honoured (public/proxy.ts): through a proxy, TLS runs end to end
 * inside a CONNECT tunnel, with the same demands.
 */
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActionError, describeError } from '../common/errors.js';
import { untrusted, untrustedLine } from '../common/untrusted.js';
import { type ImagesIndex } from '../simplestreams/images-index.js';
import { parseImagesIndex } from '../simplestreams/parse.js';
import { connectThrough, proxyFor } from './proxy.js';
import {
  expectedVersion,
  fileProblem,
  indexProblems,
  indexProducts,
  requestProblem,
  statusProblem,
  timeoutMessage,
  type ExpectedVersion,
  type Problem,
  type PublicFile,
} from './problems.js';

const PUBLIC_URL_INPUT = 'public-url';

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

/** One request, through the proxy HTTPS_PROXY names unless NO_PROXY covers the host. */
async function requestOnce(
  agent: https.Agent,
  url: string,
  method: 'GET' | 'HEAD',
  timeoutMs: number,
): Promise<Answer> {
  const proxy = proxyFor(new URL(url));
  const tunnel = proxy ? await connectThrough(proxy, new URL(url), timeoutMs) : undefined;
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ...(tunnel ? { createConnection: () => tunnel } : { agent }),
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

/** The most redirects followed for one request; more is an error. */
const MAX_REDIRECTS = 5;

const REDIRECT_STATUSES = [301, 302, 303, 307, 308];

/**
 * A request that follows redirects. The policy: a redirect is followed to any https:// address,
 * on this host or another one, as the Incus and LXD clients (Go's HTTP client) follow them: a
 * registry behind a CDN or an object store redirects clients to another host. A redirect to
 * anything but https:// (http:// above all) is refused, although Go's client would follow it:
 * clients would then download the index without TLS, which the check reports instead of passing.
 * At most MAX_REDIRECTS redirects are followed in a row; one more is an error (a loop or a
 * misconfiguration). Each hop is checked like the first: TLS 1.3 and a trusted certificate.
 */
async function request(agent: https.Agent, url: string, method: 'GET' | 'HEAD', timeoutMs: number): Promise<Answer> {
  let target = url;
  for (let redirects = 0; ; redirects++) {
    const answer = await requestOnce(agent, target, method, timeoutMs);
    const location = answer.headers.location;
    if (!REDIRECT_STATUSES.includes(answer.status) || !location) return answer;
    if (redirects >= MAX_REDIRECTS) {
      throw new Error(`more than ${MAX_REDIRECTS} redirects (the last one from ${target}); a redirect loop?`);
    }
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
        return fileProblem(file, answer.status, answer.headers['content-length']);
      } catch (error) {
        return requestProblem(file.path, error);
      }
    }),
  );
  return { problems: answers.filter((problem): problem is Problem => problem !== undefined), version };
}

/** A proxy setting the check cannot use fails once, naming it, instead of every attempt until the timeout. */
function checkProxySetting(url: string): void {
  try {
    proxyFor(new URL(url));
  } catch (error) {
    throw new ActionError(
      `The public check cannot use the proxy that HTTPS_PROXY (or https_proxy) names: ` +
        `${untrustedLine(describeError(error))}. Set it to an http:// proxy (for example http://proxy.example:3128), ` +
        "or add the registry's host to NO_PROXY to check it directly.",
      PUBLIC_URL_INPUT,
    );
  }
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
  checkProxySetting(url);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, minVersion: 'TLSv1.3' });
  let previous = '';
  try {
    for (let attempt = 1; ; attempt++) {
      const timeoutMs = Math.min(REQUEST_TIMEOUT_MS, Math.max(5000, deadline - Date.now()));
      const { problems, version } = await checkOnce(agent, url, fingerprint, timeoutMs);
      const elapsedSeconds = Math.round((Date.now() - started) / 100) / 10;
      if (problems.length === 0 && version) {
        log(
          `${url} serves ${fingerprint} (${untrusted(version.product)} ${untrusted(version.serial)}): index.json, images.json and ` +
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
          : `Not served yet (attempt ${attempt}, ${left} s left): ${untrustedLine(summary)}`,
      );
      previous = summary;
      // The last attempt runs at the deadline.
      await sleep(Math.max(0, Math.min(retryDelayMs, deadline - Date.now())));
    }
  } finally {
    agent.destroy();
  }
}
