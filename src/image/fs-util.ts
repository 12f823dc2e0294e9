import { access, mkdtemp, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { z } from 'zod';

/** Runs `body` with a fresh temporary directory inside `parent`, and always removes the directory afterwards. */
export async function withTempDir<T>(parent: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(parent, '.tmp-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Renames the finished directory `from` to `to`. When `to` already exists (another process won the race)
 * and `isComplete(to)` holds, that is success too; `from` is then left for the caller's cleanup.
 */
export async function publishDir(
  from: string,
  to: string,
  isComplete: (dir: string) => Promise<boolean>,
): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await isComplete(to))) return;
    throw error;
  }
}

/** A text file's content, or undefined when it does not exist (other read errors are thrown). */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Creates `path` (refusing an existing one) as a sparse file of `sizeMiB`: no block is written. */
export async function createSparseFile(path: string, sizeMiB: number, mode: number): Promise<void> {
  const file = await open(path, 'wx', mode);
  try {
    await file.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await file.close();
  }
}

/** Reads a JSON file and checks it against `schema`; undefined when the file is missing, unparsable or invalid. */
export async function readJsonFile<T>(path: string, schema: z.ZodType<T>): Promise<T | undefined> {
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `path` exists. */
export async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
