import { describe, expect, it } from '@jest/globals';
import { parseBuckets } from '../../../src/action/buckets.js';
import { ActionError } from '../../../src/common/errors.js';
import { capturedStdout } from '../../harness/stdout.js';

const stdout = capturedStdout();

const env = (): NodeJS.ProcessEnv => ({
  R2_KEY_ID: 'AKIDEXAMPLE',
  R2_SECRET: 'wJalrXUtnFEMI/K7MDENG',
  PATH: '/usr/bin',
});

const entry = (extra: string[] = []): string =>
  [
    '- endpoint: https://account.r2.cloudflarestorage.com',
    '  bucket: lxc-images',
    '  access-key-id-env: R2_KEY_ID',
    '  secret-access-key-env: R2_SECRET',
    ...extra.map((line) => `  ${line}`),
  ].join('\n');

function refusal(text: string, environment: NodeJS.ProcessEnv = env()): ActionError {
  try {
    parseBuckets(text, ['registry.example'], environment);
  } catch (error) {
    expect(error).toBeInstanceOf(ActionError);
    expect((error as ActionError).input).toBe('buckets');
    return error as ActionError;
  }
  throw new Error('not refused');
}

describe('parseBuckets', () => {
  it('reads an entry, with defaults, and takes the credentials out of the environment, masked', () => {
    const environment = env();
    const [bucket] = parseBuckets(entry(), ['registry.example'], environment);
    expect(bucket).toEqual({
      name: 'lxc-images',
      endpoint: 'https://account.r2.cloudflarestorage.com',
      bucket: 'lxc-images',
      prefix: '',
      region: 'us-east-1',
      pathStyle: true,
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG',
    });
    expect(environment['R2_KEY_ID']).toBeUndefined();
    expect(environment['R2_SECRET']).toBeUndefined();
    expect(stdout().join('')).toContain('::add-mask::wJalrXUtnFEMI/K7MDENG');
  });

  it('takes name, prefix (made a folder), region and path-style', () => {
    const [bucket] = parseBuckets(
      entry(['name: r2', 'prefix: /lxc/images', 'region: auto', 'path-style: false']),
      [],
      env(),
    );
    expect(bucket).toMatchObject({ name: 'r2', prefix: 'lxc/images/', region: 'auto', pathStyle: false });
    // `prefix:` with nothing after it: none.
    expect(parseBuckets(entry(['prefix:']), [], env())[0]?.prefix).toBe('');
  });

  it('is empty without the input', () => {
    expect(parseBuckets('  ', [], env())).toEqual([]);
  });

  it.each([
    [entry(['prefx: lxc/']), /prefx is not a key of a bucket: did you mean prefix\?/],
    [entry().replace('  bucket: lxc-images\n', ''), /entry 1 has no bucket/],
    [entry(['prefix: ../up']), /prefix "\.\.\/up" must be a folder/],
    [entry(['prefix: a b']), /prefix "a b" must be a folder/],
    [entry(['path-style: maybe']), /path-style must be true or false/],
    [
      entry(['path-style: false']).replace('bucket: lxc-images', 'bucket: lxc.images'),
      /path-style: false puts bucket lxc\.images in the host name/,
    ],
    [entry(['region: "us east"']), /region "us east" is not a region name/],
    [entry().replace('lxc-images', 'Lxc_Images'), /bucket "Lxc_Images" is not a bucket name/],
    [entry().replace('https://account.r2.cloudflarestorage.com', 'https://host/bucket'), /with no path, query or user/],
    [entry().replace('https://account.r2.cloudflarestorage.com', 'ftp://host'), /endpoint must be https:\/\/host/],
    [
      entry().replace('https://account.r2.cloudflarestorage.com', 'https://user:pw@host'),
      /with no path, query or user/,
    ],
    ['endpoint: x', /must be a YAML list of buckets/],
    ['- [a', /not a YAML list of buckets/],
    [[entry(), entry()].join('\n'), /two members of the fleet are named lxc-images/],
    [
      [entry(['name: a']), entry(['name: b'])].join('\n'),
      /a and b are the same bucket lxc-images and prefix ""; list each once/,
    ],
    [entry(['name: registry.example']), /two members of the fleet are named registry\.example/],
    [
      [entry(['name: root']), entry(['name: inner', 'prefix: images/'])].join('\n'),
      /root and inner share bucket lxc-images, and one's prefix lies in the other's images\/ folder \("" and "images\/"\)/,
    ],
    [
      Array(5)
        .fill(0)
        .map((_, k) => entry([`name: b${k}`, `prefix: p${k}`]))
        .join('\n'),
      /lists 5 buckets; at most 4/,
    ],
  ])('refuses %#', (text, message) => {
    expect(refusal(text).message).toMatch(message);
  });

  it('takes two registries of one bucket side by side, or one in a folder of the other that it does not own', () => {
    const both = parseBuckets(
      [entry(['name: root']), entry(['name: beside', 'prefix: staging/lxc/'])].join('\n'),
      [],
      env(),
    );
    expect(both.map((bucket) => bucket.prefix)).toEqual(['', 'staging/lxc/']);
  });

  it('refuses credentials that are not named variables, without showing the value', () => {
    const pasted = refusal(
      entry().replace('secret-access-key-env: R2_SECRET', 'secret-access-key-env: wJalrXUtnFEMI/K7MDENG'),
    );
    expect(pasted.message).toMatch(/secret-access-key-env must name an environment variable/);
    expect(pasted.message).not.toContain('wJalrXUtnFEMI');
    const empty = refusal(entry(), { R2_KEY_ID: 'AKIDEXAMPLE' });
    expect(empty.message).toMatch(/secret-access-key-env names R2_SECRET, which is empty or not set/);
    expect(refusal(entry().replace('R2_KEY_ID', 'GITHUB_TOKEN')).message).toMatch(/access-key-id-env must name/);
  });

  it('does not show back a key that may be a secret pasted in', () => {
    const error = refusal(entry(['"wJalrXUtnFEMI/K7MDENG": 1']));
    expect(error.message).toMatch(/a key \(not shown, in case it is a secret\) is not a key of a bucket/);
    expect(error.message).not.toContain('wJalrXUtnFEMI');
  });
});
