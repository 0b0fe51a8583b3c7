// nginx over TLS with a CA of its own, in front of something else on loopback (a registry for a
// caching proxy, a bucket for the bucket tests): the part of the configuration they share.
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, httpsProbe, spawnDaemon, terminate, waitReady } from './registry.js';
import { makeTestPki } from './tls.js';

export interface HttpsFront {
  /** https://127.0.0.1:PORT */
  url: string;
  /** The CA the front's certificate is signed by. */
  caFile: string;
  /** Its working directory (logs, cache). */
  root: string;
  errorLog: string;
  stop(): Promise<void>;
}

/**
 * Starts nginx listening on a free loopback port over TLS (1.2 and 1.3, as Incus needs), with
 * `http` lines in its http block (before the server) and `location` lines in its `location /`.
 */
export async function startHttpsFront(options: {
  name: string;
  http: (root: string) => string[];
  location: string[];
}): Promise<HttpsFront> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), `lxc-publish-${options.name.replace(/\W+/g, '-')}-`));
  const pki = await makeTestPki(path.join(root, 'tls'));
  const tmp = path.join(root, 'tmp');
  await fsp.mkdir(tmp);
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
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${tmp}/${kind};`),
      ...options.http(root).map((line) => `  ${line}`),
      '  server {',
      `    listen 127.0.0.1:${port} ssl;`,
      `    ssl_certificate ${pki.certFile};`,
      `    ssl_certificate_key ${pki.keyFile};`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    location / {',
      ...options.location.map((line) => `      ${line}`),
      '    }',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const nginx = spawnDaemon(
    options.name,
    '/usr/sbin/nginx',
    ['-p', `${root}/`, '-e', errorLog, '-c', conf],
    path.join(root, 'nginx.out'),
  );
  const ca = await fsp.readFile(pki.caFile, 'utf8');
  try {
    await waitReady(nginx, () => httpsProbe(port, ca));
  } catch (error) {
    await terminate([nginx]);
    throw error;
  }
  return {
    url: `https://127.0.0.1:${port}`,
    caFile: pki.caFile,
    root,
    errorLog,
    stop: async () => {
      await terminate([nginx]);
      await fsp.rm(root, { recursive: true, force: true });
    },
  };
}
