/**
 * A writer for "newc" (SVR4, magic 070701) cpio archives: the format the Linux kernel unpacks as an initramfs.
 * Archives are reproducible: every mtime, uid and gid is 0 and inodes are numbered in insertion order.
 */

import { InvalidArgumentError } from '../core/errors.js';

const MAGIC = '070701';
const HEADER_SIZE = 110;
const TRAILER = 'TRAILER!!!';
/** The kernel's PATH_MAX, NUL included. */
const MAX_NAME_BYTES = 4096;
const MAX_FIELD = 0xffffffff;

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

interface Entry {
  type: number;
  mode: number;
  data: Buffer;
}

/** Builds a newc cpio archive in memory. Parent directories are created on demand and always precede their children. */
export class CpioWriter {
  readonly #entries = new Map<string, Entry>();

  /** Adds a directory (or sets the mode of one created implicitly as a parent). */
  addDirectory(path: string, mode = 0o755): void {
    const name = normalizePath(path);
    const existing = this.#entries.get(name);
    if (existing && existing.type !== S_IFDIR)
      throw new InvalidArgumentError(`cpio: ${name} already exists and is not a directory`);
    this.#ensureParents(name);
    this.#entries.set(name, { type: S_IFDIR, mode: checkMode(mode), data: Buffer.alloc(0) });
  }

  /** Adds a regular file holding `data`. */
  addFile(path: string, data: Buffer, mode = 0o644): void {
    if (data.length > MAX_FIELD) throw new InvalidArgumentError(`cpio: ${path} is larger than 4 GiB`);
    this.#addLeaf(path, { type: S_IFREG, mode: checkMode(mode), data });
  }

  /** Adds a symbolic link pointing at `target` (stored verbatim). */
  addSymlink(path: string, target: string): void {
    if (target.length === 0 || target.includes('\0'))
      throw new InvalidArgumentError(`cpio: bad symlink target for ${path}`);
    this.#addLeaf(path, { type: S_IFLNK, mode: 0o777, data: Buffer.from(target, 'utf8') });
  }

  /** Serializes every entry, then the trailer. The writer stays usable. */
  finish(): Buffer {
    const parts: Buffer[] = [];
    let ino = 1;
    for (const [name, entry] of this.#entries) {
      parts.push(...encodeEntry(name, entry, ino++));
    }
    parts.push(...encodeEntry(TRAILER, { type: 0, mode: 0, data: Buffer.alloc(0) }, 0));
    return Buffer.concat(parts);
  }

  #addLeaf(path: string, entry: Entry): void {
    const name = normalizePath(path);
    if (this.#entries.has(name)) throw new InvalidArgumentError(`cpio: ${name} was already added`);
    this.#ensureParents(name);
    this.#entries.set(name, entry);
  }

  #ensureParents(name: string): void {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = this.#entries.get(parent);
      if (!existing) this.#entries.set(parent, { type: S_IFDIR, mode: 0o755, data: Buffer.alloc(0) });
      else if (existing.type !== S_IFDIR)
        throw new InvalidArgumentError(`cpio: parent ${parent} of ${name} is not a directory`);
    }
  }
}

/** Makes `path` relative ("/bin/sh" → "bin/sh"), drops empty and "." components; rejects "..", NUL and empty paths. */
function normalizePath(path: string): string {
  if (path.includes('\0')) throw new InvalidArgumentError('cpio: path contains a NUL byte');
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new InvalidArgumentError(`cpio: path ${JSON.stringify(path)} contains ".."`);
  const name = parts.join('/');
  if (name === '') throw new InvalidArgumentError(`cpio: empty path ${JSON.stringify(path)}`);
  if (name === TRAILER) throw new InvalidArgumentError(`cpio: ${TRAILER} is reserved`);
  if (Buffer.byteLength(name) + 1 > MAX_NAME_BYTES)
    throw new InvalidArgumentError(`cpio: path longer than ${MAX_NAME_BYTES - 1} bytes`);
  return name;
}

function checkMode(mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
    throw new InvalidArgumentError(`cpio: bad permission bits ${mode}`);
  return mode;
}

function encodeEntry(name: string, entry: Entry, ino: number): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const fields = [
    ino,
    entry.type | entry.mode,
    0, // uid
    0, // gid
    entry.type === S_IFDIR ? 2 : 1, // nlink
    0, // mtime
    entry.data.length,
    0, // devmajor
    0, // devminor
    0, // rdevmajor
    0, // rdevminor
    nameBytes.length,
    0, // check
  ];
  const header = Buffer.from(MAGIC + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'ascii');
  return [header, nameBytes, padding(HEADER_SIZE + nameBytes.length), entry.data, padding(entry.data.length)];
}

function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}
