/** metadata.yaml: what distrobuilder writes into the metadata tarball, checked for what the registry needs. */
import { incusArchitecture } from '../simplestreams/architectures.js';
import { isScalar, parseDocument, type Document } from 'yaml';
import { ActionError, describeError, oneLine } from '../common/errors.js';

export interface ImageMetadata {
  architecture: string;
  creationDate: number;
  os: string;
  release: string;
  variant: string;
  propertiesArchitecture: string;
  description: string;
}

/** metadata.yaml larger than this is refused unread (distrobuilder writes a few kilobytes). */
export const METADATA_YAML_MAX_BYTES = 1024 * 1024;

/** creation_date from 2000-01-01 on: older dates are no build's, and serials sort as text. */
const EARLIEST_CREATION_DATE = 946684800;

/**
 * Fields that form the product key (os:release:variant:architecture), the default alias
 * (os/release/variant) and the index's alias lists (comma-separated): none of those separators,
 * no blanks, no control characters.
 */
const KEY_FIELD_FORBIDDEN = /[:,/\s\u0000-\u001f\u007f]/u;

function requireString(value: unknown, field: string, path: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" has no ${field}. Build the image with distrobuilder ` +
        `(build-incus or pack-incus), or add "${field}" to the image definition.`,
      'metadata',
    );
  }
  return value;
}

function fail(path: string, problem: string): never {
  throw new ActionError(`metadata: metadata.yaml in "${path}" ${problem}`, 'metadata');
}

function describeCharacter(character: string): string {
  if (character === ' ') return 'a blank';
  if (/\s/u.test(character) || /[\u0000-\u001f\u007f]/.test(character)) {
    return `a control or blank character (U+${(character.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')})`;
  }
  return `"${character}"`;
}

/** A field of the product key: refused, naming the field and why, when it holds a separator. */
function requireKeyField(value: unknown, field: string, path: string): string {
  const text = requireString(value, field, path);
  const bad = KEY_FIELD_FORBIDDEN.exec(text)?.[0];
  if (bad !== undefined) {
    fail(
      path,
      `has ${field} "${text}", which contains ${describeCharacter(bad)}. os, release, variant and ` +
        'properties.architecture form the product key (os:release:variant:architecture) and the default alias ' +
        '(os/release/variant), and aliases are listed comma-separated: they cannot hold ":", ",", "/", blanks or ' +
        'control characters. Change it in the image definition.',
    );
  }
  return text;
}

/**
 * creation_date as incus-simplestreams reads it: a plain decimal number (no sign, leading zero,
 * exponent, underscore, quotes or tag, which YAML parsers read differently), from 2000 to a day
 * from now (a later date would stay the newest version for good).
 */
function requireCreationDate(document: Document, text: string, path: string, now: number): number {
  const node = document.get('creation_date', true);
  const source = isScalar(node) && node.range ? text.slice(node.range[0], node.range[1]) : undefined;
  const plain = isScalar(node) && node.type === 'PLAIN' && node.tag === undefined;
  if (!isScalar(node) || typeof node.value !== 'number') {
    fail(path, 'has no valid creation_date (a Unix time in seconds).');
  }
  if (!plain || source === undefined || !/^[1-9][0-9]{0,11}$/.test(source)) {
    fail(
      path,
      `has creation_date "${oneLine(String(source ?? node.value))}", which is not a plain decimal Unix time in seconds ` +
        '(a leading zero, a sign, an exponent, an underscore or a tag is read differently by incus-simplestreams). ' +
        'Write it as distrobuilder does, for example creation_date: 1767225600.',
    );
  }
  const value = Number(source);
  const latest = Math.floor(now / 1000) + 86400;
  if (value < EARLIEST_CREATION_DATE || value > latest) {
    fail(
      path,
      `has creation_date ${value} (${value > 8.64e12 ? 'far' : new Date(value * 1000).toISOString()}), which is not between ` +
        `2000-01-01 and a day from now: a date in the future would stay the newest version for good. Check the build machine's clock.`,
    );
  }
  return value;
}

/** Checks metadata.yaml for what `incus-simplestreams add` needs, read as it reads it. */
export function parseMetadataYaml(text: string, path: string, now = Date.now()): ImageMetadata {
  let document: Document;
  let root: unknown;
  try {
    document = parseDocument(text);
    const [error] = document.errors;
    if (error) throw error;
    root = document.toJS();
  } catch (error) {
    fail(path, `is not valid YAML (${describeError(error)}).`);
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) fail(path, 'is not a YAML mapping.');
  const values = root as Record<string, unknown>;
  const creationDate = requireCreationDate(document, text, path, now);
  const properties = values['properties'];
  if (typeof properties !== 'object' || properties === null) fail(path, 'has no properties section.');
  const props = properties as Record<string, unknown>;
  const architecture = requireString(values['architecture'], 'architecture', path);
  const incus = incusArchitecture(architecture);
  if (incus === undefined) {
    fail(
      path,
      `names architecture "${architecture}", which Incus does not know. ` +
        'Use an Incus architecture name such as x86_64 or aarch64 (distrobuilder sets it from image.architecture).',
    );
  }
  const os = requireKeyField(props['os'], 'properties.os', path);
  const release = requireKeyField(props['release'], 'properties.release', path);
  const variant = requireKeyField(props['variant'], 'properties.variant', path);
  const propertiesArchitecture = requireKeyField(props['architecture'], 'properties.architecture', path);
  const named = incusArchitecture(propertiesArchitecture);
  if (named !== incus) {
    fail(
      path,
      `has architecture "${architecture}" (${incus}) but properties.architecture "${propertiesArchitecture}" ` +
        `(${named ?? 'not an architecture Incus knows'}): clients would be offered the image for the wrong ` +
        'architecture. Both come from image.architecture in the image definition: build it again, or set them to ' +
        'the same architecture (x86_64 ~ amd64, aarch64 ~ arm64).',
    );
  }
  return {
    architecture,
    creationDate,
    os,
    release,
    variant,
    propertiesArchitecture,
    description: requireString(props['description'], 'properties.description', path),
  };
}
