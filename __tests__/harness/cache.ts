// A caching reverse proxy in front of the loopback registry, as a CDN edge would sit: nginx with
// proxy_cache, honouring the origin's Cache-Control (nothing overridden), over TLS with a CA of
// its own. Its access log says, per request, whether the cache answered (HIT) or the origin.
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort, httpsProbe, spawnDaemon, terminate, waitReady, type Registry } from './registry.js';
import { makeTestPki } from './tls.js';

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
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-cache-'));
  const pki = await makeTestPki(path.join(root, 'tls'));
  const tmp = path.join(root, 'tmp');
  await fsp.mkdir(tmp);
  const accessLog = path.join(root, 'access.log');
  const errorLog = path.join(root, 'error.log');
  const port = await freePort();
  const conf = path.join(root, 'nginx.conf');
  await fsp.writeFile(
    conf,
    [
      'daemon off;',
      'worker_processes 1;',
      process.getuid?.() === 0 ? 'user root;' : '',
      `pid ${path.join(root, 'nginx.pid')};`,
      `error_log ${errorLog} warn;`,
      'events { worker_connections 512; }',
      'http {',
      "  log_format cache '$status $upstream_cache_status $request_uri';",
      `  access_log ${accessLog} cache;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${tmp}/${kind};`),
      `  proxy_cache_path ${root}/cache levels=1:2 keys_zone=registry:10m max_size=1g inactive=1d use_temp_path=off;`,
      '  server {',
      `    listen 127.0.0.1:${port} ssl;`,
      `    ssl_certificate ${pki.certFile};`,
      `    ssl_certificate_key ${pki.keyFile};`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    location / {',
      `      proxy_pass ${registry.httpsUrl};`,
      '      proxy_ssl_verify on;',
      // The origin's certificate names localhost (and 127.0.0.1, which nginx does not match).
      '      proxy_ssl_name localhost;',
      `      proxy_ssl_trusted_certificate ${registry.caFile};`,
      '      proxy_http_version 1.1;',
      // Honour the origin's Cache-Control: no proxy_cache_valid, nothing ignored. Revalidate
      // with If-Modified-Since/If-None-Match, and let one request fill an entry at a time.
      '      proxy_cache registry;',
      '      proxy_cache_revalidate on;',
      '      proxy_cache_lock on;',
      '      add_header X-Cache-Status $upstream_cache_status always;',
      '    }',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  await fsp.writeFile(accessLog, '');
  const pkiCa = await fsp.readFile(pki.caFile, 'utf8');
  const nginx = spawnDaemon(
    'caching nginx',
    '/usr/sbin/nginx',
    ['-p', `${root}/`, '-e', errorLog, '-c', conf],
    path.join(root, 'nginx.out'),
  );
  try {
    await waitReady(nginx, () => httpsProbe(port, pkiCa));
  } catch (error) {
    await terminate([nginx]);
    throw error;
  }
  // A request through it, so that a proxy that cannot reach the origin fails here, saying why.
  const probe = await new Promise<number>((resolve) => {
    const request = https.get(`https://127.0.0.1:${port}/`, { ca: pkiCa, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    request.on('error', () => resolve(0));
  });
  if (probe === 502 || probe === 0) {
    const log = await fsp.readFile(errorLog, 'utf8').catch(() => '');
    await terminate([nginx]);
    throw new Error(`the caching proxy cannot reach ${registry.httpsUrl} (HTTP ${probe}):\n${log}`);
  }
  return {
    url: `https://127.0.0.1:${port}`,
    caFile: pki.caFile,
    accessLog,
    stop: async () => {
      await terminate([nginx]);
      await fsp.rm(root, { recursive: true, force: true });
    },
  };
}
