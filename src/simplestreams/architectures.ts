/**
 * Architecture names: Incus's own and the distribution names it maps to them (Incus's osarch
 * package). Clients treat `amd64` and `x86_64` as one architecture, so everything that compares
 * architectures (metadata.yaml's two fields, aliases per architecture, image lines) compares
 * their Incus names. Pure.
 */

/** Each Incus architecture name with the distribution names it maps to the same architecture. */
const ARCHITECTURES: Record<string, string[]> = {
  i686: ['i386', 'i586', '386', 'x86', 'generic_32'],
  x86_64: ['amd64', 'generic_64', 'x64'],
  armv6l: ['armel', 'arm'],
  armv7l: ['armhf', 'armhfp', 'armv7a_hardfp', 'armv7', 'armv7a_vfpv3_hardfp'],
  armv8l: [],
  aarch64: ['arm64', 'arm64_generic'],
  ppc: ['powerpc'],
  ppc64: ['powerpc64'],
  ppc64le: ['ppc64el'],
  s390x: [],
  mips: ['mipsel', 'mipsle'],
  mips64: ['mips64el', 'mips64le'],
  riscv32: [],
  riscv64: [],
  loongarch64: ['loong64'],
};

/** The Incus architecture a name (an Incus name or a distribution alias) stands for. */
export function incusArchitecture(name: string): string | undefined {
  for (const [incus, aliases] of Object.entries(ARCHITECTURES)) {
    if (name === incus || aliases.includes(name)) return incus;
  }
  return undefined;
}

/** The Incus name of an architecture name; an unknown name stands for itself. */
export function canonicalArchitecture(name: string | undefined): string {
  return name === undefined ? '' : (incusArchitecture(name) ?? name);
}
