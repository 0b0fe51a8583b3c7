// The server guide shows the nginx config the integration tests serve their registry with; the
// sub-actions share the main action's connection inputs.
import { describe, it, expect } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

describe('docs/server-setup.md', () => {
  it('includes docs/nginx/lxc-registry.conf verbatim', () => {
    const guide = read('docs/server-setup.md');
    const conf = read('docs/nginx/lxc-registry.conf');
    const block = /<!-- nginx-conf:start[^>]*-->\n\n```nginx\n([\s\S]*?)```\n\n<!-- nginx-conf:end -->/.exec(guide);
    expect(block?.[1]).toBe(conf);
  });

  it('keeps the config free of add_header Content-Type and offers TLS 1.3', () => {
    const conf = read('docs/nginx/lxc-registry.conf');
    expect(conf).not.toMatch(/^\s*add_header\s+Content-Type/im);
    expect(conf).toMatch(/^\s*ssl_protocols TLSv1\.2 TLSv1\.3;/m);
    for (const placeholder of ['__LISTEN__', '__SERVER_NAME__', '__ROOT__', '__CERT__', '__KEY__']) {
      expect(conf).toContain(placeholder);
    }
  });

  it('is linked from the README', () => {
    expect(read('README.md')).toContain('(docs/server-setup.md)');
  });
});

describe('the sub-actions', () => {
  type Action = { inputs: Record<string, unknown>; runs: { using: string; main: string } };
  const action = (file: string) => parse(read(file)) as Action;
  const main = action('action.yml');

  // Each sub-action's own inputs; lxd-compat means "check for LXD items" to the check sub-action.
  it.each([
    ['alias/action.yml', ['fingerprint', 'aliases', 'dry-run', 'mirrors', 'buckets']],
    ['remove/action.yml', ['fingerprint', 'dry-run', 'force', 'mirrors', 'buckets']],
    ['check/action.yml', ['repair', 'fail-on', 'hash-time', 'lxd-compat', 'mirrors', 'buckets']],
  ])('%s takes the connection inputs exactly as the main action declares them', (file, own) => {
    const sub = action(file);
    const shared = Object.keys(sub.inputs).filter((name) => !own.includes(name));
    expect(shared).toEqual(expect.arrayContaining(['host', 'port', 'username', 'ssh-key', 'simplestreams-dir']));
    for (const name of shared) expect(sub.inputs[name]).toEqual(main.inputs[name]);
    expect(sub.runs.using).toBe('node24');
    // runs.main is relative to the sub-action's own folder: its own committed bundle.
    const bundle = new URL(`../../${path.posix.join(path.posix.dirname(file), sub.runs.main)}`, import.meta.url);
    expect(existsSync(bundle)).toBe(true);
    expect(sub.runs.main).not.toBe('../dist/index.js');
  });
});
