// The outputs scripts read: the launch command, the registry URL and the index files to purge.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { setOutputs } from '../../../src/action/outputs.js';
import type { PublishResult } from '../../../src/registry/publication.js';

const result: PublishResult = {
  status: 'published',
  fingerprint: 'a'.repeat(64),
  product: 'Crynux:bookworm:node:amd64:202601010000',
  serial: '202601010000',
  aliases: ['crynux-node:v2.6.0'],
  imageType: 'virtual-machine',
  size: 1,
  files: [],
  aliasMoves: [],
  changedPaths: ['streams/v1/images.json', 'streams/v1/index.json', 'images/SHA256SUMS'],
};

let written: string[];
let saved: string | undefined;
beforeEach(() => {
  written = [];
  saved = process.env['GITHUB_OUTPUT'];
  delete process.env['GITHUB_OUTPUT']; // outputs then go to stdout as ::set-output lines
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(chunk.toString());
    return true;
  });
});
afterEach(() => {
  jest.restoreAllMocks();
  if (saved !== undefined) process.env['GITHUB_OUTPUT'] = saved;
});

function outputs(): Record<string, string> {
  const found: Record<string, string> = {};
  for (const match of written.join('').matchAll(/^::set-output name=([^:]+)::(.*)$/gm))
    found[match[1] as string] = match[2] as string;
  return found;
}

describe('setOutputs', () => {
  it('gives the index files to purge as URLs under public-url, and the launch command with the remote', () => {
    setOutputs(result, { publicUrl: 'https://lxc.example.org/registry', remoteName: 'crynux' });
    expect(outputs()).toMatchObject({
      'changed-paths': JSON.stringify(result.changedPaths),
      'changed-urls': JSON.stringify([
        'https://lxc.example.org/registry/streams/v1/images.json',
        'https://lxc.example.org/registry/streams/v1/index.json',
        'https://lxc.example.org/registry/images/SHA256SUMS',
      ]),
      'registry-url': 'https://lxc.example.org/registry',
      'launch-command': 'incus launch crynux:crynux-node:v2.6.0 --vm',
    });
  });

  it('without public-url: no URLs, and REMOTE for the remote', () => {
    setOutputs({ ...result, changedPaths: [] }, { publicUrl: '', remoteName: '' });
    expect(outputs()).toMatchObject({
      'changed-paths': '[]',
      'changed-urls': '[]',
      'registry-url': '',
      'launch-command': 'incus launch REMOTE:crynux-node:v2.6.0 --vm',
    });
  });
});
