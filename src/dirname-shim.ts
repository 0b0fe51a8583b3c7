/**
 * ssh2's optional native-module loader reads `__dirname`, which an ESM bundle does not define.
 * This module is imported first by index.ts so the name exists before ssh2 loads.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const scope = globalThis as { __dirname?: string };
scope.__dirname ??= dirname(fileURLToPath(import.meta.url));
