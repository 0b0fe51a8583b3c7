// A caching reverse proxy in front of the loopback registry, as a CDN edge would sit: nginx with
// proxy_cache, honouring the origin's Cache-Control (nothing overridden), over TLS with a CA of
// its own. Its access log says, per request, whether the cache answered (HIT) or the origin.
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { startHttpsFront } from './https-front.js';
import type { Registry } from './registry.js';

export interface CachingProxy {
  /** https://127.0.0.1:PORT: the registry as clients behind the cache see it. */
  url: string;
  /** The CA the proxy's certificate is signed by. */
  caFile: string;
  /** One line per request: "STATUS CACHE-STATUS URI" (CACHE-STATUS: HIT, MISS, EXPIRED, REVALIDATED, …). */
  accessLog: string;
  stop(): Promise<void>;
}

export async function startCachingProxy(registry: Pick<Registry, 'httpsUrl' | 'caFile'>): Promise<CachingProxy> {
  const front = await startHttpsFront({
    name: 'caching nginx',
    http: (root) => [
      "log_format cache '$status $upstream_cache_status $request_uri';",
      `access_log ${path.join(root, 'access.log')} cache;`,
      `proxy_cache_path ${root}/cache levels=1:2 keys_zone=registry:10m max_size=1g inactive=1d use_temp_path=off;`,
    ],
    location: [
      `proxy_pass ${registry.httpsUrl};`,
      'proxy_ssl_verify on;',
      // The origin's certificate names localhost (and 127.0.0.1, which nginx does not match).
      'proxy_ssl_name localhost;',
      `proxy_ssl_trusted_certificate ${registry.caFile};`,
      'proxy_http_version 1.1;',
      // Honour the origin's Cache-Control: no proxy_cache_valid, nothing ignored. Revalidate
      // with If-Modified-Since/If-None-Match, and let one request fill an entry at a time.
      'proxy_cache registry;',
      'proxy_cache_revalidate on;',
      'proxy_cache_lock on;',
      'add_header X-Cache-Status $upstream_cache_status always;',
    ],
  });
  const accessLog = path.join(front.root, 'access.log');
  const pkiCa = await fsp.readFile(front.caFile, 'utf8');
  // A request through it, so that a proxy that cannot reach the origin fails here, saying why.
  const probe = await new Promise<number>((resolve) => {
    const request = https.get(`${front.url}/`, { ca: pkiCa, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    request.on('error', () => resolve(0));
  });
  if (probe === 502 || probe === 0) {
    const log = await fsp.readFile(front.errorLog, 'utf8').catch(() => '');
    await front.stop();
    throw new Error(`the caching proxy cannot reach ${registry.httpsUrl} (HTTP ${probe}):\n${log}`);
  }
  return { url: front.url, caFile: front.caFile, accessLog, stop: () => front.stop() };
}
