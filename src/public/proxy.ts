/**
 * HTTPS_PROXY and NO_PROXY for the public check, as curl and Go's HTTP client read them: an
 * https:// URL whose host NO_PROXY does not cover is fetched through a CONNECT tunnel opened by
 * the http:// proxy HTTPS_PROXY names (https_proxy first). TLS runs end to end inside the tunnel,
 * with the same demands as without a proxy (TLS 1.3, a trusted certificate for the host).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import tls from 'node:tls';

/** The proxy to use for `url`, or undefined to go direct. */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  if (url.protocol !== 'https:') return undefined;
  const proxy = (env['https_proxy'] || env['HTTPS_PROXY'] || '').trim();
  if (proxy === '') return undefined;
  if (bypassed(url, env['no_proxy'] ?? env['NO_PROXY'] ?? '')) return undefined;
  const parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`);
  if (parsed.protocol !== 'http:') {
    throw new Error(`HTTPS_PROXY ${parsed.protocol}//${parsed.host}: only http:// proxies (CONNECT) are supported`);
  }
  return parsed;
}

/**
 * Whether NO_PROXY covers the URL's host: `*`; a host name, which covers its subdomains too
 * (a leading dot is the same); an IP address; each optionally with `:port`.
 */
export function bypassed(url: URL, noProxy: string): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const port = url.port || '443';
  return noProxy
    .split(/[\s,]+/)
    .filter((entry) => entry !== '')
    .some((raw) => {
      if (raw === '*') return true;
      const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(raw.toLowerCase());
      if (!match) return false;
      const entryHost = (match[1] as string).replace(/^\[(.*)\]$/, '$1').replace(/^\*?\./, '');
      if (match[2] && match[2] !== port) return false;
      return host === entryHost || host.endsWith(`.${entryHost}`);
    });
}

/**
 * A TLS connection to `url`'s host through a CONNECT tunnel of `proxy`: TLS 1.3 at least, the
 * certificate checked against the host name, as without a proxy.
 */
export function connectThrough(proxy: URL, url: URL, timeoutMs: number): Promise<tls.TLSSocket> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const target = `${url.hostname}:${url.port || '443'}`;
  const headers: Record<string, string> = { Host: target };
  if (proxy.username) {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(proxy.port || '80'),
      method: 'CONNECT',
      path: target,
      headers,
      agent: false,
    });
    const timer = setTimeout(
      () => req.destroy(new Error(`the proxy ${proxy.host} did not answer within ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
    req.on('connect', (res: http.IncomingMessage, socket: Socket) => {
      clearTimeout(timer);
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`the proxy ${proxy.host} refused the tunnel to ${target} (HTTP ${res.statusCode ?? '?'})`));
        return;
      }
      resolve(tls.connect({ socket, host, servername: host, minVersion: 'TLSv1.3' }));
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`the proxy ${proxy.host} cannot be reached: ${error.message}`));
    });
    req.end();
  });
}
