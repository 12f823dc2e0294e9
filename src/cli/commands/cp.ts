import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import type { SandboxApi } from '../../sandbox/api.js';
import { connectSandbox } from '../sandboxes.js';

interface Location {
  readonly sandboxId: string | undefined;
  readonly path: string;
}

/** `ID:/path` is a guest path; anything else is a host path. */
function parseLocation(text: string): Location {
  const match = /^([a-z0-9-]+):(.+)$/.exec(text);
  return match ? { sandboxId: match[1], path: match[2]! } : { sandboxId: undefined, path: text };
}

async function upload(sandbox: SandboxApi, hostPath: string, guestPath: string): Promise<void> {
  const info = await stat(hostPath);
  if (info.isDirectory()) {
    await sandbox.files.mkdir(guestPath, info.mode & 0o7777);
    for (const name of await readdir(hostPath))
      await upload(sandbox, join(hostPath, name), posix.join(guestPath, name));
    return;
  }
  await sandbox.files.write(guestPath, createReadStream(hostPath), { mode: info.mode & 0o7777 });
}

async function download(sandbox: SandboxApi, guestPath: string, hostPath: string): Promise<void> {
  const info = await sandbox.files.stat(guestPath);
  if (info.type === 'directory') {
    await mkdir(hostPath, { recursive: true, mode: info.mode });
    for (const entry of await sandbox.files.list(guestPath)) {
      await download(sandbox, posix.join(guestPath, entry.name), join(hostPath, entry.name));
    }
    return;
  }
  const { content, mode } = await sandbox.files.readStream(guestPath);
  await pipeline(content, createWriteStream(hostPath, { mode }));
}

export function registerCp(program: Command): void {
  program
    .command('cp')
    .description('copy files or directories between the host and a detached sandbox (ID:/path names the guest side)')
    .argument('<source>')
    .argument('<destination>')
    .action(async (sourceText: string, destinationText: string) => {
      const source = parseLocation(sourceText);
      const destination = parseLocation(destinationText);
      const sandboxId = source.sandboxId ?? destination.sandboxId;
      if (!sandboxId || (source.sandboxId && destination.sandboxId)) {
        throw new InvalidArgumentError('exactly one side of `jitvm cp` must be ID:/guest/path');
      }
      const sandbox = await connectSandbox(sandboxId);
      try {
        if (destination.sandboxId) await upload(sandbox, source.path, destination.path);
        else await download(sandbox, source.path, destination.path);
      } finally {
        sandbox.detach();
      }
    });
}
