// The server guide shows the nginx config the integration tests serve their registry with.
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';

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
