/**
 * The registry's public address and the remote name clients give it: the `public-url` and
 * `remote-name` inputs, checked, and the name derived from the URL when none is given.
 */
import { ActionError, oneLine } from '../common/errors.js';

const PUBLIC_URL_INPUT = 'public-url';
const REMOTE_NAME_INPUT = 'remote-name';

/**
 * The registry's public address as the clients use it: `https://host[:port][/path]`, without a
 * trailing slash. Blank text gives '' (no public URL). Only https: `incus remote add
 * --protocol=simplestreams` refuses anything else ("Only https URLs are supported"), even on
 * loopback, so an http URL could never be launched from.
 */
export function validatePublicUrl(text: string): string {
  const value = text.trim();
  if (value === '') return '';
  const shown = oneLine(value);
  const fail = (why: string): never => {
    throw new ActionError(`${PUBLIC_URL_INPUT}: "${shown}" ${why}`, PUBLIC_URL_INPUT);
  };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail("is not a URL. Give the registry's HTTPS address, for example https://lxc.example.com.");
  }
  if (url.protocol !== 'https:') {
    fail(
      `is not an https:// address. Incus and LXD clients only add simplestreams remotes over HTTPS; ` +
        `serve the registry with TLS and give its https:// address.`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    fail(
      'holds a user name or password. Give the public address without credentials (it is shown in the job summary).',
    );
  }
  if (url.search !== '' || url.hash !== '' || /[?#]/.test(value)) {
    fail("has a query (?...) or fragment (#...). Give the address of the registry's root directory only.");
  }
  const path = url.pathname.replace(/\/+$/, '');
  if (/(^|\/)streams(\/|$)/.test(path)) {
    fail(
      "points inside streams/. Give the registry's root, the directory that holds streams/ and images/ " +
        '(for example https://lxc.example.com, not https://lxc.example.com/streams/v1/index.json).',
    );
  }
  return `${url.protocol}//${url.host}${path}`;
}

/** Remotes that stock incus or lxc clients already have: `remote add` of these fails. */
const RESERVED_REMOTES = new Set([
  'local',
  'images',
  'ubuntu',
  'ubuntu-daily',
  'ubuntu-minimal',
  'ubuntu-minimal-daily',
]);

/** Host labels that say "an image server" rather than whose it is. */
const GENERIC_LABELS = new Set([
  'lxc',
  'lxd',
  'incus',
  'image',
  'images',
  'img',
  'www',
  'registry',
  'containers',
  'simplestreams',
  'streams',
  'cdn',
  'dl',
  'download',
  'downloads',
  'mirror',
  'mirrors',
  'repo',
  'repos',
  'static',
  'files',
]);

const FALLBACK_REMOTE = 'registry';

/**
 * The remote name the summary's commands use when `remote-name` is empty, from the URL's host:
 * the host's labels without the last one (the TLD), lowercased, each reduced to [a-z0-9-]; the
 * first that is not a generic word (lxc, lxd, incus, images, www, registry, cdn, mirror, …) nor
 * a remote stock clients already have (local, images, ubuntu…). Without one, the first label that
 * is not such a remote; for an IP address, `localhost` or nothing usable: `registry`.
 *
 * https://lxc.crynux.io → crynux; https://images.example.co.uk → example;
 * https://crynux.io → crynux; https://lxc.io → lxc; https://127.0.0.1:8443 → registry.
 */
export function defaultRemoteName(url: string): string {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/\.+$/, '');
  } catch {
    return FALLBACK_REMOTE;
  }
  if (host === '' || host === 'localhost' || host.startsWith('[') || /^[0-9.]+$/.test(host)) return FALLBACK_REMOTE;
  const labels = host.split('.');
  const candidates = (labels.length > 1 ? labels.slice(0, -1) : labels)
    .map((label) => label.replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, ''))
    .filter((label) => label !== '' && !RESERVED_REMOTES.has(label));
  return candidates.find((label) => !GENERIC_LABELS.has(label)) ?? candidates[0] ?? FALLBACK_REMOTE;
}

/**
 * A remote name given in `remote-name`, trimmed. Incus refuses ':' (it separates remote and
 * image) and a name is also a file name in the client's config ('/'); the summary's commands must
 * paste into a shell as they are. So: letters, digits, '.', '_' and '-', starting with a letter
 * or digit, at most 64 characters, and not a remote stock clients already define.
 */
export function validateRemoteName(name: string): string {
  const value = name.trim();
  const shown = oneLine(value);
  if (value === '') {
    throw new ActionError(
      `${REMOTE_NAME_INPUT}: give a name, or leave the input out to derive one from public-url.`,
      REMOTE_NAME_INPUT,
    );
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(value)) {
    throw new ActionError(
      `${REMOTE_NAME_INPUT}: "${shown}" cannot be used as a remote name. Use up to 64 letters, digits, '.', '_' ` +
        `and '-', starting with a letter or digit (no ':', '/' or blanks), for example crynux.`,
      REMOTE_NAME_INPUT,
    );
  }
  if (RESERVED_REMOTES.has(value.toLowerCase())) {
    throw new ActionError(
      `${REMOTE_NAME_INPUT}: "${shown}" is a remote that incus or lxc clients already have ` +
        `(${[...RESERVED_REMOTES].join(', ')}), so \`remote add\` would fail. Choose another name.`,
      REMOTE_NAME_INPUT,
    );
  }
  return value;
}
