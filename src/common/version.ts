/** Version numbers as tools print them ("6.0.4", "4.6.1-2+deb12u1"). */

/** Whether `version` is at least `minimum` (compared part by part; missing parts count as 0). */
export function versionAtLeast(version: string, minimum: readonly number[]): boolean {
  const parts = version.split(/[.+~-]/).map((part) => Number.parseInt(part, 10));
  for (const [index, wanted] of minimum.entries()) {
    const have = parts[index] ?? 0;
    if (Number.isNaN(have)) return false;
    if (have !== wanted) return have > wanted;
  }
  return true;
}
