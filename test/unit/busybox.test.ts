import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { it } from 'node:test';
import { appletNames } from '../../src/image/busybox.js';
import { ImageBuildError } from '../../src/image/errors.js';

const table = (names: string[]): Buffer => Buffer.from(`\x7fELF junk\0${names.join('\0')}\0\0more junk`, 'latin1');
const applets = ['[', '[[', 'ash', 'cat', 'echo', 'ls', 'mkdir', 'sh', 'sleep', 'true', 'wc'];

it('reads the applet names from the sorted NUL-separated table that starts with [ and [[', () => {
  assert.deepEqual(appletNames(table(applets), 'busybox'), applets);
});

it('refuses a binary without an applet table, or with an unsorted one', () => {
  assert.throws(() => appletNames(Buffer.from('no table here'), 'busybox'), ImageBuildError);
  const unsorted = [...applets.slice(0, 5), 'zz', ...applets.slice(5)];
  assert.throws(() => appletNames(table(unsorted), 'busybox'), /applet table/);
});

it("agrees with the host busybox's own --list", { skip: !existsSync('/bin/busybox') && 'no /bin/busybox' }, () => {
  const listed = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual(appletNames(readFileSync('/bin/busybox'), '/bin/busybox'), listed);
});
