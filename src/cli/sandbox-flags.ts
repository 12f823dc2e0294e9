import { statSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { InvalidArgumentError } from '../core/errors.js';
import type { SandboxOptions } from '../sandbox/options.js';

/** The network and storage flags of `run` and `create`. */
export function addSandboxFlags(command: Command, options: { publish: boolean }): Command {
  command
    .addOption(
      new Option(
        '--network <mode>',
        'none (default): no NIC; nat: outbound NAT; allowlist: only --allow targets',
      ).choices(['none', 'nat', 'allowlist']),
    )
    .addOption(
      new Option(
        '--allow <entry>',
        'allow a domain (*.example.com for subdomains), IP or CIDR; implies --network allowlist',
      ).argParser(collect),
    )
    .addOption(
      new Option(
        '--add-host <name=ip>',
        'resolve this name to this address (nat: guest /etc/hosts; allowlist: proxy)',
      ).argParser(collectHost),
    )
    .option('--rootfs <image>', 'boot into this ext4 root filesystem image (`jitvm image build --from-dir|--from-oci`)')
    .option('--overlay <spec>', "where the rootfs's writes go: tmpfs[:MiB] (default) or disk:MiB (a size limit)")
    .addOption(
      new Option(
        '-v, --volume <src:path[:rw]>',
        'mount an ext4 image or share a host directory (read-only unless :rw)',
      ).argParser(collect),
    );
  if (options.publish) {
    command.addOption(
      new Option(
        '-p, --publish <[host:]guest>',
        'publish a guest TCP port on 127.0.0.1 (host port 0/absent: any)',
      ).argParser(collect),
    );
  }
  return command;
}

export interface SandboxFlags {
  network?: 'none' | 'nat' | 'allowlist';
  allow?: string[];
  addHost?: Record<string, string>;
  rootfs?: string;
  overlay?: string;
  volume?: string[];
  publish?: string[];
}

/** The SDK options the network and storage flags ask for. */
export function sandboxFlagOptions(flags: SandboxFlags): SandboxOptions {
  if (flags.overlay !== undefined && flags.rootfs === undefined)
    throw new InvalidArgumentError('--overlay needs --rootfs');
  return {
    network: networkFrom(flags.network, flags.allow ?? [], flags.addHost),
    rootfs: flags.rootfs ? { image: flags.rootfs, overlay: overlayFrom(flags.overlay) } : undefined,
    volumes: flags.volume?.map(volumeFrom),
    ports: flags.publish?.map(portFrom),
  };
}

function networkFrom(
  given: SandboxFlags['network'],
  allow: string[],
  hosts: Record<string, string> | undefined,
): SandboxOptions['network'] {
  const mode = given ?? (allow.length > 0 ? 'allowlist' : undefined);
  if (mode !== 'allowlist' && allow.length > 0) throw new InvalidArgumentError(`--allow needs --network allowlist`);
  if (mode === 'allowlist') {
    if (allow.length === 0) throw new InvalidArgumentError('--network allowlist needs at least one --allow');
    return { mode, allow, hosts };
  }
  if (hosts && mode !== 'nat') throw new InvalidArgumentError('--add-host needs --network nat or allowlist');
  return mode === 'nat' ? { mode, hosts } : mode === 'none' ? { mode } : undefined;
}

function overlayFrom(spec: string | undefined): NonNullable<SandboxOptions['rootfs']>['overlay'] {
  if (spec === undefined || spec === 'tmpfs') return { type: 'tmpfs' };
  const match = /^(tmpfs|disk):(\d+)$/.exec(spec);
  if (!match) throw new InvalidArgumentError(`--overlay expects tmpfs, tmpfs:MiB or disk:MiB, got "${spec}"`);
  return { type: match[1] as 'tmpfs' | 'disk', sizeMiB: Number(match[2]) };
}

/** `SRC:/guest/path[:rw|:ro]`: SRC a directory (shared over virtio-fs) or a disk image. */
function volumeFrom(spec: string): NonNullable<SandboxOptions['volumes']>[number] {
  const match = /^(.+?):(\/[^:]*)(?::(rw|ro))?$/.exec(spec);
  if (!match) throw new InvalidArgumentError(`--volume expects SRC:/guest/path[:rw], got "${spec}"`);
  const [, source, path, mode] = match as unknown as [string, string, string, string | undefined];
  const readOnly = mode !== 'rw';
  const isDir = statSync(source, { throwIfNoEntry: false })?.isDirectory() ?? false;
  return isDir ? { hostDir: source, path, readOnly } : { image: source, path, readOnly };
}

/** `GUEST` or `HOST:GUEST`, as docker's -p. */
function portFrom(spec: string): { guest: number; host?: number } {
  const match = /^(?:(\d+):)?(\d+)$/.exec(spec);
  if (!match) throw new InvalidArgumentError(`--publish expects GUEST or HOST:GUEST ports, got "${spec}"`);
  return { guest: Number(match[2]), ...(match[1] === undefined ? {} : { host: Number(match[1]) }) };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectHost(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const equals = value.indexOf('=');
  if (equals <= 0) throw new InvalidArgumentError(`--add-host expects NAME=IP, got "${value}"`);
  return { ...previous, [value.slice(0, equals)]: value.slice(equals + 1) };
}
