import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';

/** lstat of `path`, or undefined when nothing is there; other errors (EACCES, ENOTDIR…) are thrown. */
export async function lstatIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
