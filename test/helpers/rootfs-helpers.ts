/**
 * Test helpers for rootfs images: tarballs written in memory (layers with any entry, including hostile ones; OCI
 * layouts; `docker save` archives), and an ext4 image read back with debugfs, without mounting it.
 */

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

import { Header, type HeaderData } from 'tar';

import { e2fsTool } from '../../src/image/rootfs/e2fsprogs.js';

/** One entry of a test tarball; `data` makes a file unless another `type` is given. */
export interface TarEntry extends HeaderData {
  path: string;
  data?: string | Buffer;
}

/** The mtime of every entry of a test tarball that names none. */
export const MTIME = new Date('2024-05-01T12:00:00Z');

/** A ustar archive of `entries`, written as given: no path is checked or cleaned. */
export function tarBytes(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { data, ...fields } of entries) {
    const bytes = Buffer.from(data ?? '');
    const type = fields.type ?? (fields.path.endsWith('/') ? 'Directory' : 'File');
    const header = new Header({
      mode: type === 'Directory' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      mtime: MTIME,
      ...fields,
      type,
      size: bytes.length,
    });
    if (header.encode()) throw new Error(`${fields.path}: the test tar writer has no pax headers`);
    blocks.push(header.block!, bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** `sha256:<hex>` of `bytes`. */
export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A file of an outer archive, by path. */
type ArchiveFiles = Map<string, Buffer>;

function addBlob(files: ArchiveFiles, bytes: Buffer): { digest: string; size: number } {
  const digest = digestOf(bytes);
  files.set(`blobs/sha256/${digest.slice(7)}`, bytes);
  return { digest, size: bytes.length };
}

function archiveOf(files: ArchiveFiles): Buffer {
  return tarBytes([...files].map(([path, data]) => ({ path, data })));
}

/** The runtime part of an image config. */
export interface RuntimeConfig {
  Env?: string[];
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  Cmd?: string[];
  User?: string;
}

/** One image of a test archive. */
export interface TestImage {
  /** OCI architecture (`amd64`, `arm64`). */
  architecture: string;
  /** Uncompressed layer tars, lowest first. */
  layers: Buffer[];
  /** Layers as stored: gzip (default) or as they are. */
  compression?: 'gzip' | 'none';
  /** Overrides a layer's media type (`+zstd`…). */
  mediaType?: string;
  runtime?: RuntimeConfig;
  /** Overrides the diff ids the config records. */
  diffIds?: string[];
  name?: string;
}

function configBytes(image: TestImage): Buffer {
  const config = {
    architecture: image.architecture,
    os: 'linux',
    config: image.runtime ?? {},
    rootfs: { type: 'layers', diff_ids: image.diffIds ?? image.layers.map(digestOf) },
  };
  return Buffer.from(JSON.stringify(config));
}

/**
 * An OCI image layout tarball of `images`: index.json lists each image's manifest with its platform, or with
 * `nested`, one image index (a multi-platform image) that lists them. `tamper` may change the files before they are
 * archived.
 */
export function ociArchive(
  images: readonly TestImage[],
  options: { nested?: boolean; declarePlatform?: boolean; tamper?: (files: ArchiveFiles) => void } = {},
): Buffer {
  const files: ArchiveFiles = new Map([['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')]]);
  const manifests = images.map((image) => {
    const gzip = (image.compression ?? 'gzip') === 'gzip';
    const layers = image.layers.map((layer) => ({
      mediaType: image.mediaType ?? `application/vnd.oci.image.layer.v1.tar${gzip ? '+gzip' : ''}`,
      ...addBlob(files, gzip ? gzipSync(layer) : layer),
    }));
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', ...addBlob(files, configBytes(image)) };
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers }));
    const platform =
      options.declarePlatform === false ? {} : { platform: { architecture: image.architecture, os: 'linux' } };
    const annotations = image.name ? { annotations: { 'org.opencontainers.image.ref.name': image.name } } : {};
    return {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...addBlob(files, manifest),
      ...platform,
      ...annotations,
    };
  });
  let top = manifests;
  if (options.nested) {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests }));
    top = [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...addBlob(files, index) }];
  }
  files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: top })));
  options.tamper?.(files);
  return archiveOf(files);
}

/** A `docker save` tarball of one image: manifest.json, `<config digest>.json` and `<n>/layer.tar` files. */
export function dockerArchive(image: TestImage): Buffer {
  const config = configBytes(image);
  const configName = `${digestOf(config).slice(7)}.json`;
  const files: ArchiveFiles = new Map([[configName, config]]);
  const layerNames = image.layers.map((layer, i) => {
    files.set(`${i}/layer.tar`, image.compression === 'gzip' ? gzipSync(layer) : layer);
    return `${i}/layer.tar`;
  });
  const manifest = [{ Config: configName, RepoTags: [image.name ?? 'test:latest'], Layers: layerNames }];
  files.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
  return archiveOf(files);
}

const run = promisify(execFile);

async function debugfs(image: string, request: string): Promise<{ stdout: Buffer; stderr: string }> {
  const { stdout, stderr } = await run(e2fsTool('debugfs'), ['-R', request, image], { encoding: 'buffer' });
  return { stdout, stderr: stderr.toString() };
}

/** What debugfs says about one inode. */
export interface Ext4Stat {
  inode: number;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** A fast symlink's target. */
  target?: string;
  /** A device's `major:minor`. */
  device?: string;
}

/** `debugfs stat` of `path` in the image; undefined when it is not there. */
export async function ext4Stat(image: string, path: string): Promise<Ext4Stat | undefined> {
  const { stdout, stderr } = await debugfs(image, `stat "${path}"`);
  const text = stdout.toString();
  if (/not found/.test(stderr) || text === '') return undefined;
  const field = (pattern: RegExp): string => pattern.exec(text)?.[1] ?? assertMissing(pattern, text);
  const device = /Device major\/minor number: (\d+):(\d+)/.exec(text);
  return {
    inode: Number(field(/Inode: (\d+)/)),
    type: field(/Type: (.+?)\s{2,}/),
    mode: parseInt(field(/Mode:\s+(\d+)/), 8),
    uid: Number(field(/User:\s+(\d+)/)),
    gid: Number(field(/Group:\s+(\d+)/)),
    size: Number(field(/Size: (\d+)/)),
    links: Number(field(/Links: (\d+)/)),
    mtime: parseInt(field(/ mtime: 0x([0-9a-f]+)/), 16),
    target: /Fast link dest: "(.*)"/.exec(text)?.[1],
    device: device ? `${Number(device[1])}:${Number(device[2])}` : undefined,
  };
}

function assertMissing(pattern: RegExp, text: string): never {
  throw new Error(`debugfs stat has no ${pattern}:\n${text}`);
}

/** The contents of the file at `path` in the image. */
export async function ext4Read(image: string, path: string): Promise<string> {
  return (await debugfs(image, `cat "${path}"`)).stdout.toString();
}

/** The names in the directory `path` of the image, `.` and `..` left out, sorted. */
export async function ext4List(image: string, path: string): Promise<string[]> {
  const lines = (await debugfs(image, `ls -p "${path}"`)).stdout.toString().split('\n');
  const names = lines.map((line) => line.split('/')[5]).filter((name): name is string => !!name);
  return names.filter((name) => name !== '.' && name !== '..').sort();
}

/** The entries of `dir` on the host, for checking that a build left nothing behind. */
export function leftovers(dir: string): string[] {
  return readdirSync(dir).sort();
}
