// The bucket client against real HTTP on loopback (no S3 store needed): what it sends, and that
// a store which never answers does not hold the step.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Bucket } from '../../../src/bucket/store.js';

function bucketAt(port: number, timeouts?: { connectMs: number; idleMs: number }): Bucket {
  const settings = {
    name: 'local',
    endpoint: `http://127.0.0.1:${port}`,
    bucket: 'lxc-images',
    prefix: '',
    region: 'us-east-1',
    pathStyle: true,
    accessKeyId: 'AKID',
    secretAccessKey: 'SECRET',
  };
  return timeouts ? new Bucket(settings, timeouts) : new Bucket(settings);
}

describe('DeleteObjects', () => {
  let server: http.Server;
  let headers: http.IncomingHttpHeaders | undefined;
  beforeAll(async () => {
    server = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        if (request.method === 'POST' && request.url?.includes('delete')) headers = request.headers;
        response.writeHead(200, { 'content-type': 'application/xml' });
        response.end('<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('carries Content-MD5, which every S3 store takes (some refuse a CRC32 alone)', async () => {
    const bucket = bucketAt((server.address() as AddressInfo).port);
    try {
      await bucket.delete(['images/x']);
    } finally {
      bucket.close();
    }
    expect(headers?.['content-md5']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
  });
});

describe('a store that accepts a connection and never answers', () => {
  let silent: net.Server;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('fails each attempt after the idle timeout instead of waiting for good', async () => {
    // Half a second here; two minutes in use.
    const bucket = bucketAt((silent.address() as AddressInfo).port, { connectMs: 500, idleMs: 500 });
    const started = Date.now();
    try {
      await expect(bucket.check()).rejects.toThrow(/Bucket local: Reaching bucket lxc-images failed/);
    } finally {
      bucket.close();
    }
    // Three attempts, each given up after the idle timeout (with the SDK's back-off between them).
    expect(sockets.length).toBe(3);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
