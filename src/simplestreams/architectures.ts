/**
 * Architecture names: Incus's own and the distribution names it maps to them (Incus's osarch
 * package). Clients treat `amd64` and `x86_64` as one architecture, so everything that compares
 * architectures (aliases per architecture, image lines) compares their Incus names. Pure.
 */

/**
 * Architecture names Incus accepts in metadata.yaml, each with the Incus name it stands for: its
 * own names and the distribution names it maps to them (as in Incus's osarch package).
 */
export const INCUS_ARCHITECTURES: ReadonlyMap<string, string> = new Map(
  Object.entries({
    i686: ['i686', 'i386', 'i586', 'x86'],
    x86_64: ['x86_64', 'amd64', 'x64'],
    armv6l: ['armv6l', 'armel'],
    armv7l: ['armv7l', 'armhf'],
    armv8l: ['armv8l'],
    aarch64: ['aarch64', 'arm64'],
    aarch64_be: ['arm64be'],
    ppc: ['ppc', 'powerpc'],
    ppc64: ['ppc64', 'powerpc64'],
    ppc64le: ['ppc64le', 'ppc64el'],
    s390x: ['s390x'],
    mips: ['mips', 'mipsel'],
    mips64: ['mips64', 'mips64el'],
    riscv32: ['riscv32'],
    riscv64: ['riscv64'],
    loongarch64: ['loongarch64', 'loong64'],
  }).flatMap(([incus, names]) => names.map((name): [string, string] => [name, incus])),
);

/** The Incus name of an architecture name; an unknown name stands for itself. */
export function canonicalArchitecture(name: string | undefined): string {
  return name === undefined ? '' : (INCUS_ARCHITECTURES.get(name) ?? name);
}
