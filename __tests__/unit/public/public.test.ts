import { describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { ActionError } from '../../../src/common/errors.js';
import { checkPublicRegistry } from '../../../src/public/check.js';
import { clientCommands } from '../../../src/public/commands.js';
import {
  expectedVersion,
  fileProblem,
  indexProblems,
  indexProducts,
  requestProblem,
  statusProblem,
  timeoutMessage,
  type Problem,
} from '../../../src/public/problems.js';
import { defaultRemoteName, validatePublicUrl, validateRemoteName } from '../../../src/public/remote.js';
import { buildStreamsIndex, type ImagesIndex } from '../../../src/simplestreams/images-index.js';
import { parseImagesIndex } from '../../../src/simplestreams/parse.js';

const fingerprint = 'a'.repeat(64);
const metaSha = 'b'.repeat(64);
const product = 'Crynux:bookworm:default:amd64';

/** images.json with one split container version, its Incus items doubled for LXD (same files). */
function sampleIndex(): ImagesIndex {
  const metadata = {
    ftype: 'incus.tar.xz',
    path: `images/${metaSha}.incus.tar.xz`,
    sha256: metaSha,
    size: 288,
    combined_squashfs_sha256: fingerprint,
  };
  return parseImagesIndex(
    JSON.stringify({
      content_id: 'images',
      datatype: 'image-downloads',
      format: 'products:1.0',
      products: {
        [product]: {
          aliases: 'crynux-node:v2.6.0,crynux-node:latest',
          arch: 'amd64',
          versions: {
            '202511241600': {
              items: {
                'incus.tar.xz': metadata,
                'lxd.tar.xz': { ...metadata, ftype: 'lxd.tar.xz' },
                squashfs: { ftype: 'squashfs', path: `images/${metaSha}.squashfs`, sha256: 'c'.repeat(64), size: 4096 },
              },
            },
          },
        },
      },
    }),
  );
}

function actionError(fn: () => unknown): ActionError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ActionError);
    return error as ActionError;
  }
  throw new Error('expected an ActionError');
}

describe('validatePublicUrl', () => {
  it('normalises an https address: trailing slashes go, the host is lowercased, a path is kept', () => {
    expect(validatePublicUrl('https://lxc.crynux.io')).toBe('https://lxc.crynux.io');
    expect(validatePublicUrl(' https://LXC.Crynux.IO/ \n')).toBe('https://lxc.crynux.io');
    expect(validatePublicUrl('https://example.com:8443/lxc//')).toBe('https://example.com:8443/lxc');
    expect(validatePublicUrl('https://example.com:443/')).toBe('https://example.com');
    expect(validatePublicUrl('https://127.0.0.1:4443')).toBe('https://127.0.0.1:4443');
  });

  it('gives an empty string for a blank input', () => {
    expect(validatePublicUrl('')).toBe('');
    expect(validatePublicUrl('  ')).toBe('');
  });

  it.each([
    ['http://lxc.crynux.io', /not an https:\/\/ address/],
    ['http://127.0.0.1:8080', /not an https:\/\/ address/],
    ['ftp://lxc.crynux.io', /not an https:\/\/ address/],
    ['lxc.crynux.io', /is not a URL/],
    ['https://', /is not a URL/],
    ['https://lxc.crynux.io/?x=1', /query .* or fragment/],
    ['https://lxc.crynux.io/#top', /query .* or fragment/],
    ['https://lxc.crynux.io/?', /query .* or fragment/],
    ['https://user:secret@lxc.crynux.io', /user name or password/],
    ['https://lxc.crynux.io/streams/v1/index.json', /points inside streams\//],
  ])('refuses %s, naming public-url and the fix', (text, why) => {
    const error = actionError(() => validatePublicUrl(text));
    expect(error.input).toBe('public-url');
    expect(error.message).toMatch(/^public-url: /);
    expect(error.message).toMatch(why);
  });

  it('does not echo control characters', () => {
    expect(actionError(() => validatePublicUrl('http://x\u001b[31m')).message).not.toContain('\u001b');
  });
});

describe('defaultRemoteName', () => {
  it.each([
    ['https://lxc.crynux.io', 'crynux'],
    ['https://crynux.io', 'crynux'],
    ['https://images.linuxcontainers.org', 'linuxcontainers'],
    ['https://registry.lxc.example.com/path', 'example'],
    ['https://www.example.co.uk', 'example'],
    ['https://cdn.images.My_Company.example', 'my-company'],
    ['https://lxc.io', 'lxc'],
    ['https://images.io', 'registry'],
    ['https://local.crynux.io', 'crynux'],
    ['https://ubuntu.example.org', 'example'],
    ['https://intranet:8443', 'intranet'],
    ['https://LXC.Crynux.IO.', 'crynux'],
    ['https://xn--bcher-kva.example', 'xn--bcher-kva'],
    ['https://127.0.0.1:4443', 'registry'],
    ['https://[::1]:4443', 'registry'],
    ['https://localhost:4443', 'registry'],
    ['not a url', 'registry'],
  ])('%s → %s', (url, name) => {
    expect(defaultRemoteName(url)).toBe(name);
    expect(validateRemoteName(name)).toBe(name);
  });
});

describe('validateRemoteName', () => {
  it('accepts and trims plain names', () => {
    expect(validateRemoteName(' crynux ')).toBe('crynux');
    expect(validateRemoteName('Crynux.prod_2-a')).toBe('Crynux.prod_2-a');
  });

  it.each(['', ' ', 'a:b', 'a/b', 'a b', 'tab\there', '-x', '.hidden', 'x$(id)', "it's", 'a'.repeat(65)])(
    'refuses %j, naming remote-name',
    (name) => {
      const error = actionError(() => validateRemoteName(name));
      expect(error.input).toBe('remote-name');
      expect(error.message).toMatch(/^remote-name: /);
    },
  );

  it('refuses the remotes stock clients already have', () => {
    for (const name of ['images', 'local', 'ubuntu', 'Ubuntu-Daily']) {
      expect(actionError(() => validateRemoteName(name)).message).toMatch(/already have .* Choose another name/);
    }
  });
});

describe('clientCommands', () => {
  const container = {
    fingerprint,
    aliases: ['crynux-node:v2.6.0', 'crynux-node:latest'],
    imageType: 'container' as const,
  };

  it('adds the remote and launches by the first alias, for incus and lxc', () => {
    expect(clientCommands('crynux', 'https://lxc.crynux.io', container)).toEqual({
      incus: [
        'incus remote add crynux https://lxc.crynux.io --protocol=simplestreams',
        'incus launch crynux:crynux-node:v2.6.0 my-instance',
      ],
      lxc: [
        'lxc remote add crynux https://lxc.crynux.io --protocol=simplestreams',
        'lxc launch crynux:crynux-node:v2.6.0 my-instance',
      ],
    });
  });

  it('launches a VM with --vm, and by fingerprint prefix without aliases', () => {
    const commands = clientCommands('crynux', 'https://lxc.crynux.io', {
      fingerprint,
      aliases: [],
      imageType: 'virtual-machine',
    });
    expect(commands.incus[1]).toBe(`incus launch crynux:${'a'.repeat(12)} my-instance --vm`);
    expect(commands.lxc[1]).toBe(`lxc launch crynux:${'a'.repeat(12)} my-instance --vm`);
  });

  it('quotes words a shell would not read back as they are', () => {
    const commands = clientCommands('crynux', 'https://lxc.crynux.io/a~b', {
      ...container,
      aliases: ["it's $(id)"],
    });
    expect(commands.incus).toEqual([
      "incus remote add crynux 'https://lxc.crynux.io/a~b' --protocol=simplestreams",
      `incus launch 'crynux:it'\\''s $(id)' my-instance`,
    ]);
  });
});

describe('what the check expects', () => {
  it('lists each file of the version once, with its size', () => {
    expect(expectedVersion(sampleIndex(), fingerprint)).toEqual({
      product,
      serial: '202511241600',
      files: [
        { path: `images/${metaSha}.incus.tar.xz`, size: 288 },
        { path: `images/${metaSha}.squashfs`, size: 4096 },
      ],
    });
    expect(expectedVersion(sampleIndex(), 'f'.repeat(64))).toBeUndefined();
  });

  it('reads the products index.json names', () => {
    expect(indexProducts(buildStreamsIndex(sampleIndex()))).toEqual([product]);
    expect(indexProducts({ index: { a: { products: ['x', 1] }, b: { products: ['y'] }, c: null } })).toEqual([
      'x',
      'y',
    ]);
    for (const document of [null, [], {}, { index: 'x' }, { index: { images: {} } }]) {
      expect(indexProducts(document)).toEqual([]);
    }
  });

  it('says what the indexes do not list yet', () => {
    const version = expectedVersion(sampleIndex(), fingerprint);
    expect(indexProblems(fingerprint, [product], version)).toEqual([]);
    expect(indexProblems(fingerprint, [product], undefined)).toEqual([
      { kind: 'stale', message: `streams/v1/images.json does not list fingerprint ${fingerprint} (not served yet)` },
    ]);
    expect(indexProblems(fingerprint, ['other'], version)).toEqual([
      { kind: 'stale', message: `streams/v1/index.json does not name product ${product} (not served yet)` },
    ]);
  });

  it('checks status and Content-Length of a HEAD answer', () => {
    const file = { path: 'images/x.squashfs', size: 4096 };
    expect(fileProblem(file, 200, '4096')).toBeUndefined();
    expect(fileProblem(file, 200, ' 4096 ')).toBeUndefined();
    expect(fileProblem(file, 200, '4000')).toEqual({
      kind: 'size',
      message: 'images/x.squashfs: wrong size, 4000 bytes served instead of 4096',
    });
    expect(fileProblem(file, 200, undefined)?.message).toMatch(/without a Content-Length \(expected 4096 bytes\)/);
    expect(fileProblem(file, 200, 'abc')?.kind).toBe('size');
    expect(fileProblem(file, 404, '0')).toEqual({
      kind: 'missing',
      message: 'images/x.squashfs: not served (HTTP 404)',
    });
    expect(fileProblem(file, 403, '4096')).toEqual({ kind: 'http', message: 'images/x.squashfs: HTTP 403' });
    expect(statusProblem('streams/v1/index.json', 500).message).toBe('streams/v1/index.json: HTTP 500');
  });
});

describe('requestProblem', () => {
  const failure = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

  it('tells certificate errors from protocol version errors', () => {
    expect(
      requestProblem(
        'streams/v1/index.json',
        failure('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      ),
    ).toEqual({
      kind: 'tls',
      tlsVersion: false,
      message:
        'streams/v1/index.json: TLS error: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)',
    });
    expect(requestProblem('x', failure('certificate has expired', 'CERT_HAS_EXPIRED'))).toMatchObject({
      kind: 'tls',
      tlsVersion: false,
    });
    expect(
      requestProblem('x', failure("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID')),
    ).toMatchObject({ kind: 'tls', tlsVersion: false });
    expect(
      requestProblem('x', failure('tlsv1 alert protocol version', 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')),
    ).toMatchObject({ kind: 'tls', tlsVersion: true });
  });

  it('reports other failures as network problems', () => {
    expect(requestProblem('x', failure('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED'))).toEqual({
      kind: 'network',
      message: 'x: connect ECONNREFUSED 127.0.0.1:1',
    });
    expect(requestProblem('x', failure('getaddrinfo ENOTFOUND nowhere.invalid', 'ENOTFOUND')).kind).toBe('network');
    expect(requestProblem('x', 'odd').message).toBe('x: odd');
  });
});

describe('timeoutMessage', () => {
  const url = 'https://lxc.crynux.io';

  it('names public-url, what was wrong last and the fix', () => {
    const message = timeoutMessage(url, fingerprint, 300, 60, [
      { kind: 'stale', message: `streams/v1/images.json does not list fingerprint ${fingerprint} (not served yet)` },
    ]);
    expect(message).toMatch(
      /^public-url: https:\/\/lxc\.crynux\.io does not serve image a{64} \(checked 60 times over 300 s/,
    );
    expect(message).toContain('does not list fingerprint');
    expect(message).toMatch(/CDN .* raise public-check-timeout/);
  });

  it('says checked once for a zero timeout, and shortens long lists', () => {
    const problems: Problem[] = Array.from({ length: 8 }, (_, i) => ({
      kind: 'missing',
      message: `images/f${i}: not served (HTTP 404)`,
    }));
    const message = timeoutMessage(url, fingerprint, 0, 1, problems);
    expect(message).toContain('(checked once, public-check-timeout 0 s)');
    expect(message).toContain('images/f4: not served');
    expect(message).not.toContain('images/f5');
    expect(message).toContain('and 3 more');
    expect(message).toContain('simplestreams-dir');
  });

  it('hints at TLS 1.3, and at the certificate for certificate errors', () => {
    const version = timeoutMessage(url, fingerprint, 10, 2, [
      { kind: 'tls', tlsVersion: true, message: 'x: TLS error' },
    ]);
    expect(version).toContain('TLS 1.3');
    expect(version).not.toContain('full chain');
    const certificate = timeoutMessage(url, fingerprint, 10, 2, [
      { kind: 'tls', tlsVersion: false, message: 'x: TLS error' },
    ]);
    expect(certificate).toContain('full chain');
    expect(certificate).toContain('TLS 1.3');
  });

  it('hints at a stale cache for wrong sizes', () => {
    expect(timeoutMessage(url, fingerprint, 10, 2, [{ kind: 'size', message: 'x: wrong size' }])).toMatch(
      /purge the CDN/,
    );
  });
});

describe('checkPublicRegistry without a server', () => {
  /** A loopback port nothing listens on. */
  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it('checks once with a zero timeout and fails naming public-url', async () => {
    const url = `https://127.0.0.1:${await closedPort()}`;
    const lines: string[] = [];
    const failure = checkPublicRegistry({ url, fingerprint, timeoutSeconds: 0, log: (line) => lines.push(line) });
    await expect(failure).rejects.toBeInstanceOf(ActionError);
    await expect(failure).rejects.toMatchObject({ input: 'public-url' });
    await expect(failure).rejects.toThrow(/checked once.*ECONNREFUSED.*DNS and firewall/);
    expect(lines).toEqual([]);
  });

  it('retries until the timeout, logging what is missing', async () => {
    const url = `https://127.0.0.1:${await closedPort()}`;
    const lines: string[] = [];
    const started = Date.now();
    await expect(
      checkPublicRegistry({ url, fingerprint, timeoutSeconds: 1, retryDelayMs: 200, log: (line) => lines.push(line) }),
    ).rejects.toThrow(/checked \d+ times over 1 s/);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatch(/^Not served yet \(attempt 1, 1 s left\): streams\/v1\/index\.json: connect ECONNREFUSED/);
    expect(lines[1]).toMatch(/^Still not served \(attempt 2, \d s left\)$/);
  });
});
