import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Applets a minimal root filesystem links to busybox. */
const APPLETS = [
  'sh',
  'true',
  'head',
  'cat',
  'ls',
  'echo',
  'dd',
  'df',
  'mount',
  'rm',
  'sync',
  'wget',
  'nc',
  'sleep',
  'touch',
  'timeout',
];

/**
 * Lays out a tiny root filesystem in `dir`: the host's static busybox with its common applets, /etc/os-release
 * naming `name`, and /usr/local/bin/image-says, a program that exists only in this image.
 */
export function busyboxTree(dir: string, name: string): string {
  for (const sub of ['bin', 'etc', 'usr/local/bin', 'tmp', 'root']) mkdirSync(join(dir, sub), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const applet of APPLETS) symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(join(dir, 'etc/os-release'), `NAME=${name}\n`);
  writeFileSync(join(dir, 'usr/local/bin/image-says'), `#!/bin/sh\necho "this is ${name}"\n`, { mode: 0o755 });
  return dir;
}
