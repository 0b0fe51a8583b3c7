/** metadata.yaml: what distrobuilder writes into the metadata tarball, checked for what the registry needs. */
import { parse as parseYaml } from 'yaml';
import { ActionError, describeError } from '../common/errors.js';

export interface ImageMetadata {
  architecture: string;
  creationDate: number;
  os: string;
  release: string;
  variant: string;
  propertiesArchitecture: string;
  description: string;
}

/**
 * Architecture names Incus accepts in metadata.yaml: its own names and the distribution aliases
 * it maps to them (as in Incus's osarch package).
 */
const INCUS_ARCHITECTURES = new Set([
  'i686',
  'x86_64',
  'armv6l',
  'armv7l',
  'armv8l',
  'aarch64',
  'ppc',
  'ppc64',
  'ppc64le',
  's390x',
  'mips',
  'mips64',
  'riscv32',
  'riscv64',
  'loongarch64',
  'i386',
  'i586',
  'amd64',
  'x64',
  'armel',
  'armhf',
  'arm64',
  'arm64be',
  'powerpc',
  'powerpc64',
  'ppc64el',
  'mipsel',
  'mips64el',
  'loong64',
]);

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
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" is not valid YAML (${describeError(error)}).`,
      'metadata',
    );
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new ActionError(`metadata: metadata.yaml in "${path}" is not a YAML mapping.`, 'metadata');
  }
  const root = document as Record<string, unknown>;
  const creationDate = root['creation_date'];
  if (typeof creationDate !== 'number' || !Number.isInteger(creationDate) || creationDate <= 0) {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" has no valid creation_date (a Unix time in seconds).`,
      'metadata',
    );
  }
  const properties = root['properties'];
  if (typeof properties !== 'object' || properties === null) {
    throw new ActionError(`metadata: metadata.yaml in "${path}" has no properties section.`, 'metadata');
  }
  const props = properties as Record<string, unknown>;
  const architecture = requireString(root['architecture'], 'architecture', path);
  if (!INCUS_ARCHITECTURES.has(architecture)) {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" names architecture "${architecture}", which Incus does not know. ` +
        'Use an Incus architecture name such as x86_64 or aarch64 (distrobuilder sets it from image.architecture).',
      'metadata',
    );
  }
  return {
    architecture,
    creationDate,
    os: requireString(props['os'], 'properties.os', path),
    release: requireString(props['release'], 'properties.release', path),
    variant: requireString(props['variant'], 'properties.variant', path),
    propertiesArchitecture: requireString(props['architecture'], 'properties.architecture', path),
    description: requireString(props['description'], 'properties.description', path),
  };
}
