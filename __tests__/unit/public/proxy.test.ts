import { describe, expect, it } from '@jest/globals';
import { ActionError } from '../../../src/common/errors.js';
import { checkPublicRegistry } from '../../../src/public/check.js';
import { bypassed, proxyFor } from '../../../src/public/proxy.js';

const url = (text: string) => new URL(text);

describe('proxyFor', () => {
  it('uses https_proxy, then HTTPS_PROXY, for https:// URLs only', () => {
    expect(proxyFor(url('https://lxc.example.com'), { HTTPS_PROXY: 'http://proxy:3128' })?.host).toBe('proxy:3128');
    expect(
      proxyFor(url('https://lxc.example.com'), { https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:2' })?.host,
    ).toBe('a:1');
    expect(proxyFor(url('https://lxc.example.com'), { HTTPS_PROXY: 'proxy:3128' })?.href).toBe('http://proxy:3128/');
    expect(proxyFor(url('http://lxc.example.com'), { HTTPS_PROXY: 'http://proxy:3128' })).toBeUndefined();
    expect(proxyFor(url('https://lxc.example.com'), {})).toBeUndefined();
  });

  it('refuses proxy schemes other than http://', () => {
    expect(() => proxyFor(url('https://lxc.example.com'), { HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(
      /only http:\/\/ proxies/,
    );
  });
});

describe('NO_PROXY', () => {
  it.each([
    ['*', 'https://lxc.example.com', true],
    ['example.com', 'https://lxc.example.com', true],
    ['example.com', 'https://example.com', true],
    ['.example.com', 'https://lxc.example.com', true],
    ['*.example.com', 'https://lxc.example.com', true],
    ['example.com', 'https://badexample.com', false],
    ['lxc.example.com:443', 'https://lxc.example.com', true],
    ['lxc.example.com:8443', 'https://lxc.example.com', false],
    ['10.0.0.1', 'https://10.0.0.1:8443', true],
    ['[::1]', 'https://[::1]:8443', true],
    ['other.org, example.com', 'https://LXC.Example.com', true],
    ['', 'https://lxc.example.com', false],
  ])('%j covers %s: %s', (noProxy, target, expected) => {
    expect(bypassed(url(target), noProxy)).toBe(expected);
  });
});

describe('a proxy setting the check cannot use', () => {
  it('fails the check at once, naming HTTPS_PROXY and what to set, instead of retrying until the timeout', async () => {
    const names = ['HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'];
    const saved = names.map((name) => process.env[name]);
    for (const name of names) delete process.env[name];
    process.env['HTTPS_PROXY'] = 'socks5://proxy.example:1080';
    try {
      const started = Date.now();
      const check = checkPublicRegistry({
        url: 'https://registry.example',
        fingerprint: 'a'.repeat(64),
        timeoutSeconds: 300,
        log: () => undefined,
      });
      await expect(check).rejects.toThrow(ActionError);
      await expect(check).rejects.toThrow(/HTTPS_PROXY .*only http:\/\/ proxies.*Set it to an http:\/\/ proxy/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      names.forEach((name, i) => {
        if (saved[i] === undefined) delete process.env[name];
        else process.env[name] = saved[i];
      });
    }
  });
});
