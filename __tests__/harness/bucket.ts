// A real S3 object store on loopback: a throwaway one-node Ceph cluster (monitor, manager, one
// OSD) with radosgw serving the S3 API (harness/ceph/ceph-up.sh, from Debian 12's own packages;
// about 5 s to start), and an HTTPS front for a bucket (nginx, as a CDN in front of a bucket
// would sit: https://front/… is bucket/prefix/…), since the clients read simplestreams over HTTPS
// only.
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { run } from './exec.js';
import { startHttpsFront, type HttpsFront } from './https-front.js';
import { freePort } from './registry.js';

const CEPH = fileURLToPath(new URL('./ceph/', import.meta.url));

export interface ObjectStore {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** A client with the store's credentials (what the tests check with). */
  client: S3Client;
  /** A bucket readable by anyone (images/ and streams/ under `prefix`), as the scaling-out guide sets one up. */
  createBucket(name: string, prefix?: string): Promise<void>;
  /** The bucket policy createBucket sets: anyone may read images/ and streams/ under `prefix`. */
  allowReads(name: string, prefix?: string): Promise<void>;
  /** Every key under `prefix` in `bucket`, with its size. */
  keys(bucket: string, prefix?: string): Promise<Map<string, number>>;
  /** An object's bytes, or undefined. */
  read(bucket: string, key: string): Promise<Buffer | undefined>;
  /** An object's headers as the store serves them. */
  headers(bucket: string, key: string): Promise<{ contentType?: string; cacheControl?: string; sha256?: string }>;
  stop(): Promise<void>;
}

/** Starts the store; `storeGb`: the size of its (sparse) disk file, which deletes do not shrink. */
export async function startObjectStore(options: { storeGb?: number } = {}): Promise<ObjectStore> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-ceph-'));
  const dir = path.join(root, 'cluster');
  const env = {
    ...process.env,
    CEPHLAB_DIR: dir,
    CEPHLAB_STORE_GB: String(options.storeGb ?? 12),
    CEPHLAB_RGW_PORT: String(await freePort()),
  };
  const down = async (): Promise<void> => {
    await run('bash', [path.join(CEPH, 'ceph-down.sh')], { env, timeoutMs: 180_000 });
    await fsp.rm(root, { recursive: true, force: true });
  };
  const up = await run('bash', [path.join(CEPH, 'ceph-up.sh')], { env, timeoutMs: 180_000 });
  if (up.code !== 0) {
    await down();
    throw new Error(`ceph-up.sh failed (${up.code}):\n${up.stdout}\n${up.stderr}`);
  }
  const values = Object.fromEntries(
    (await fsp.readFile(path.join(dir, 's3.env'), 'utf8'))
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  ) as Record<string, string>;
  const endpoint = values['S3_ENDPOINT'] as string;
  const accessKey = values['S3_ACCESS_KEY'] as string;
  const secretKey = values['S3_SECRET_KEY'] as string;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const keys = async (bucket: string, prefix = ''): Promise<Map<string, number>> => {
    const found = new Map<string, number>();
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) found.set(object.Key ?? '', object.Size ?? -1);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  };
  const allowReads = async (name: string, prefix = ''): Promise<void> => {
    const readable = ['images/*', 'streams/*'].map((folder) => `arn:aws:s3:::${name}/${prefix}${folder}`);
    const policy = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: readable }],
    };
    await client.send(new PutBucketPolicyCommand({ Bucket: name, Policy: JSON.stringify(policy) }));
  };
  return {
    endpoint,
    accessKey,
    secretKey,
    client,
    createBucket: async (name, prefix = '') => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      await allowReads(name, prefix);
    },
    allowReads,
    keys,
    read: async (bucket, key) => {
      try {
        const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(
          await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
        );
      } catch {
        return undefined;
      }
    },
    headers: async (bucket, key) => {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        ...(head.ContentType ? { contentType: head.ContentType } : {}),
        ...(head.CacheControl ? { cacheControl: head.CacheControl } : {}),
        ...(head.Metadata?.['sha256'] ? { sha256: head.Metadata['sha256'] } : {}),
      };
    },
    stop: async () => {
      client.destroy();
      await down();
    },
  };
}

export type BucketFront = Pick<HttpsFront, 'url' | 'caFile' | 'stop'>;

/** nginx over TLS in front of `bucket`/`prefix` of the store: anonymous reads only, passed through. */
export function startBucketFront(
  store: Pick<ObjectStore, 'endpoint'>,
  bucket: string,
  prefix = '',
): Promise<BucketFront> {
  return startHttpsFront({
    name: 'bucket front',
    http: () => ['access_log off;'],
    location: [
      'limit_except GET { deny all; }',
      `proxy_pass ${store.endpoint}/${bucket}/${prefix};`,
      'proxy_http_version 1.1;',
      // Anonymous: the store answers what its bucket policy lets anyone read.
      'proxy_set_header Authorization "";',
      'proxy_buffering off;',
    ],
  });
}
