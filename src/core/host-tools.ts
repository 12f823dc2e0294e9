import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { platformPath } from './paths.js';

const execFileAsync = promisify(execFile);

/** What a PATH lookup reads, injectable so Windows lookups are tested on Linux. */
export interface PathLookupHost {
  readonly platform: NodeJS.Platform;
  readonly env: NodeJS.ProcessEnv;
  /** Whether `path` is a file this user may run. */
  readonly isExecutable: (path: string) => boolean;
}

/** Windows has no execute bit (X_OK means "exists" there), so a Windows candidate only needs to be a file. */
function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Lookups on the host this process runs on. */
export const thisPathLookupHost: PathLookupHost = {
  platform: process.platform,
  env: process.env,
  isExecutable: isExecutableFile,
};

/** cmd.exe's default when PATHEXT is unset. */
const DEFAULT_PATHEXT = '.COM;.EXE;.BAT;.CMD';

/**
 * The file names `name` may have on disk: itself on POSIX; on Windows, `name` plus each PATHEXT extension, or `name`
 * alone when it already ends in one (as cmd.exe resolves `qemu-system-x86_64` to `qemu-system-x86_64.exe`).
 */
function candidateNames(name: string, host: PathLookupHost): string[] {
  if (host.platform !== 'win32') return [name];
  const extensions = (host.env.PATHEXT ?? DEFAULT_PATHEXT).split(';').filter((ext) => ext.startsWith('.'));
  if (extensions.some((ext) => name.toLowerCase().endsWith(ext.toLowerCase()))) return [name];
  return extensions.map((ext) => `${name}${ext.toLowerCase()}`);
}

/** The absolute path of `name` on PATH (honouring PATHEXT on Windows), or undefined when it is not installed. */
export function findOnPath(name: string, host: PathLookupHost = thisPathLookupHost): string | undefined {
  const paths = platformPath(host.platform);
  // Windows keeps the variable as `Path`; Node's process.env looks names up case-insensitively there, a plain object does not.
  const searchPath = host.env.PATH ?? host.env.Path ?? '';
  for (const dir of searchPath.split(paths.delimiter)) {
    if (!dir) continue;
    for (const candidate of candidateNames(name, host)) {
      const path = paths.join(dir, candidate);
      if (host.isExecutable(path)) return path;
    }
  }
  return undefined;
}

/** First line of `<binary> --version`, or undefined when it cannot be run. */
export async function toolVersion(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 5000 });
    return stdout.split('\n')[0]?.trim() || undefined;
  } catch {
    return undefined;
  }
}
