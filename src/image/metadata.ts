/** metadata.yaml: what distrobuilder writes into the metadata tarball, checked for what the registry needs. */
import { isMap, isScalar, parseDocument } from 'yaml';
import { ActionError, describeError } from '../common/errors.js';
import { INCUS_ARCHITECTURES } from '../simplestreams/architectures.js';

export interface ImageMetadata {
  architecture: string;
  creationDate: number;
  os: string;
  release: string;
  variant: string;
  propertiesArchitecture: string;
  description: string;
}

/** The earliest creation_date accepted: 2000-01-01. Later than now plus a day is refused too. */
const EARLIEST_CREATION_DATE = 946684800;

/**
 * Fields that make the product key `{os}:{release}:{variant}:{arch}` and the default alias
 * `{os}/{release}/{variant}`: no separator of either, no blank, no control character.
 */
const KEY_FIELD = /^[^:,/\s\u0000-\u001f\u007f]{1,128}$/;

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

/** Checks metadata.yaml for what `incus-simplestreams add` needs. */
export function parseMetadataYaml(text: string, path: string): ImageMetadata {
  const fail = (problem: string): never => {
    throw new ActionError(`metadata: metadata.yaml in "${path}" ${problem}`, 'metadata');
  };
  let document: unknown;
  let dateSource: string | undefined;
  try {
    const parsed = parseDocument(text);
    const [error] = parsed.errors;
    if (error) throw error;
    document = parsed.toJS();
    const dateNode = isMap(parsed.contents) ? parsed.get('creation_date', true) : undefined;
    dateSource = isScalar(dateNode) && dateNode.type === 'PLAIN' ? dateNode.source : undefined;
  } catch (error) {
    return fail(`is not valid YAML (${describeError(error)}).`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return fail('is not a YAML mapping.');
  }
  const root = document as Record<string, unknown>;
  const creationDate = checkCreationDate(root['creation_date'], dateSource, fail);
  const properties = root['properties'];
  if (typeof properties !== 'object' || properties === null) fail('has no properties section.');
  const props = properties as Record<string, unknown>;
  const architecture = requireString(root['architecture'], 'architecture', path);
  const incusArchitecture = INCUS_ARCHITECTURES.get(architecture);
  if (!incusArchitecture) {
    fail(
      `names architecture "${architecture}", which Incus does not know. Use an Incus architecture name such as ` +
        'x86_64 or aarch64 (distrobuilder sets it from image.architecture).',
    );
  }
  const keyField = (field: string, value: unknown): string => {
    const text = requireString(value, field, path);
    if (!KEY_FIELD.test(text)) {
      fail(
        `has ${field} ${JSON.stringify(text)}, which holds a ':', ',', '/', a blank or a control character (or is ` +
          `over 128 characters): it makes the product key and the default alias, which such characters would break. ` +
          'Change it in the image definition.',
      );
    }
    return text;
  };
  const propertiesArchitecture = keyField('properties.architecture', props['architecture']);
  if (INCUS_ARCHITECTURES.get(propertiesArchitecture) !== incusArchitecture) {
    fail(
      `has architecture ${architecture} but properties.architecture ${JSON.stringify(propertiesArchitecture)}, ` +
        'which is another architecture: clients would launch the image on the wrong hosts. Build it with one ' +
        'architecture (distrobuilder sets both from image.architecture).',
    );
  }
  return {
    architecture,
    creationDate,
    os: keyField('properties.os', props['os']),
    release: keyField('properties.release', props['release']),
    variant: keyField('properties.variant', props['variant']),
    propertiesArchitecture,
    description: requireString(props['description'], 'properties.description', path),
  };
}

/**
 * creation_date as a plain decimal number of seconds (the server reads `017…` as octal, and
 * serials are compared as text), from 2000 to one day from now.
 */
function checkCreationDate(value: unknown, source: string | undefined, fail: (problem: string) => never): number {
  const latest = Math.floor(Date.now() / 1000) + 86400;
  if (
    typeof value !== 'number' ||
    source === undefined ||
    !/^[1-9][0-9]*$/.test(source) ||
    value < EARLIEST_CREATION_DATE ||
    value > latest
  ) {
    return fail(
      `has no valid creation_date: it must be a plain decimal Unix time in seconds (no leading zero, exponent ` +
        `or quotes) from 2000-01-01 to now plus a day (${latest}); it gives the version its serial.`,
    );
  }
  return value;
}
