// Test CA and nginx server certificate made with the openssl CLI.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { runOk } from './exec.js';

export interface TestPki {
  caFile: string;
  caKeyFile: string;
  certFile: string;
  keyFile: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Writes a CA (CA:TRUE) and a server cert for IP:127.0.0.1 / DNS:localhost signed by it, into dir. */
export async function makeTestPki(dir: string, days = 3): Promise<TestPki> {
  await fsp.mkdir(dir, { recursive: true });
  const caFile = path.join(dir, 'ca.pem');
  const caKeyFile = path.join(dir, 'ca.key');
  const certFile = path.join(dir, 'server.pem');
  const keyFile = path.join(dir, 'server.key');
  const csrFile = path.join(dir, 'server.csr');
  const extFile = path.join(dir, 'server-ext.cnf');

  await Promise.all([
    runOk('openssl', [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      caKeyFile,
      '-out',
      caFile,
      '-days',
      String(days),
      '-subj',
      '/CN=lxc-publish test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]),
    runOk('openssl', ['req', '-new', ...EC, '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=127.0.0.1']),
    fsp.writeFile(
      extFile,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '',
      ].join('\n'),
    ),
  ]);
  await runOk('openssl', [
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    caFile,
    '-CAkey',
    caKeyFile,
    '-set_serial',
    `0x${randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '1')}`,
    '-days',
    String(days),
    '-extfile',
    extFile,
    '-out',
    certFile,
  ]);
  return { caFile, caKeyFile, certFile, keyFile };
}
