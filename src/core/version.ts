import { readFileSync } from 'node:fs';

/** jitvm's own version, from its package.json (dist/src/core/ → the package root). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Whether a dotted version (`[1, 16, 0]`) is at least `minimum`; missing parts count as 0. */
export function versionAtLeast(version: readonly number[], minimum: readonly number[]): boolean {
  for (let i = 0; i < Math.max(version.length, minimum.length); i++) {
    const [have, need] = [version[i] ?? 0, minimum[i] ?? 0];
    if (have !== need) return have > need;
  }
  return true;
}
