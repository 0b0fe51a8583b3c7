// The public check honours HTTPS_PROXY and NO_PROXY, run through the committed bundle as the
// runner runs it: with HTTPS_PROXY set it goes through a CONNECT tunnel of the harness's proxy
// (counted), with TLS still checked end to end (a run that does not trust the registry's CA fails
// through the tunnel too); with NO_PROXY covering the host it goes direct (no tunnel).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BundleRun, errorLines, inputsFor, runBundle } from '../harness/action.js';
import { startConnectProxy, type ConnectProxy } from '../harness/connect-proxy.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

const TIMEOUT = 180_000;
let work: string;
let registry: Registry;
let proxy: ConnectProxy;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-proxy-'));
  registry = await startRegistry();
  proxy = await startConnectProxy();
}, TIMEOUT);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

let counter = 0;
const newImage = (variant: string): Promise<TestImage> =>
  makeSplitContainerImage(path.join(work, `image-${counter++}`), { variant, compression: 'gzip' });

function publishChecked(image: TestImage, env: NodeJS.ProcessEnv): Promise<BundleRun> {
  return runBundle(inputsFor(registry, image, { 'public-url': registry.httpsUrl, 'public-check-timeout': '0' }), env);
}

const port = (): string => new URL(registry.httpsUrl).port;

describe('the public check behind a proxy', () => {
  it(
    'goes through the CONNECT tunnel HTTPS_PROXY names',
    async () => {
      const before = proxy.tunnels.length;
      const result = await publishChecked(await newImage('proxy-through'), {
        NODE_EXTRA_CA_CERTS: registry.caFile,
        HTTPS_PROXY: proxy.url,
        NO_PROXY: 'example.invalid,.localdomain',
      });
      expect({ code: result.code, errors: errorLines(result) }).toEqual({ code: 0, errors: [] });
      expect(result.stdout).toContain(`${registry.httpsUrl} serves`);
      expect(proxy.tunnels.length).toBeGreaterThan(before);
      expect(new Set(proxy.tunnels.slice(before))).toEqual(new Set([`127.0.0.1:${port()}`]));
    },
    TIMEOUT,
  );

  it(
    'still checks the certificate end to end through the tunnel (lowercase https_proxy too)',
    async () => {
      const before = proxy.tunnels.length;
      const result = await publishChecked(await newImage('proxy-untrusted'), { https_proxy: proxy.url });
      expect(result.code).toBe(1);
      expect(errorLines(result).join('\n')).toMatch(/certificate/i);
      expect(proxy.tunnels.length).toBeGreaterThan(before);
    },
    TIMEOUT,
  );

  it(
    'goes direct when NO_PROXY covers the host',
    async () => {
      for (const noProxy of ['127.0.0.1', `localhost, 127.0.0.1:${port()}`, '*']) {
        const before = proxy.tunnels.length;
        const result = await publishChecked(await newImage(`proxy-bypass-${counter}`), {
          NODE_EXTRA_CA_CERTS: registry.caFile,
          HTTPS_PROXY: proxy.url,
          NO_PROXY: noProxy,
        });
        expect({ noProxy, code: result.code, errors: errorLines(result) }).toEqual({ noProxy, code: 0, errors: [] });
        expect({ noProxy, tunnels: proxy.tunnels.length - before }).toEqual({ noProxy, tunnels: 0 });
      }
    },
    TIMEOUT,
  );
});
