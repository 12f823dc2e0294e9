/**
 * vfkit's command line as vfkit itself reads it, for the fake `vfkit` and the argv contract test. Pinned source:
 * crc-org/vfkit@b2bc27e50b6103a8f6664ad599fbd3fc0970797f — pkg/cmdline/cmdline.go (the flags, parsed by cobra and
 * spf13/pflag), pkg/cmdline/string_slice.go (`--bootloader` values), pkg/config/bootloader.go and
 * pkg/config/virtio.go (device options and their error texts), pkg/rest/rest.go (the REST URI), cmd/vfkit/root.go.
 * Everything vfkit accepts but the fake does not emulate is refused loudly, never ignored.
 */

/** An error vfkit reports for its command line: cobra prints "Error: <message>" and the usage, and vfkit exits 1. */
export class VfkitUsageError extends Error {}

/** Something vfkit accepts but the fake does not emulate. */
export class NotEmulatedError extends Error {
  constructor(what: string) {
    super(`fake vfkit: ${what} is not emulated`);
  }
}

type FlagKind = 'string' | 'uint' | 'bool' | 'stringArray' | 'stringSlice';

interface FlagSpec {
  readonly kind: FlagKind;
  readonly short?: string;
  readonly fallback?: string;
  readonly help: string;
}

/** cmdline.AddFlags, plus cobra's own --help and --version. */
export const FLAGS: Readonly<Record<string, FlagSpec>> = {
  bootloader: { kind: 'stringSlice', short: 'b', help: 'bootloader configuration' },
  'cloud-init': { kind: 'stringSlice', help: 'path to user-data and meta-data cloud-init configuration files' },
  cpus: { kind: 'uint', short: 'c', fallback: '1', help: 'number of virtual CPUs' },
  device: { kind: 'stringArray', short: 'd', fallback: '[]', help: 'devices' },
  gui: { kind: 'bool', help: 'display the contents of the virtual machine onto a graphical user interface' },
  help: { kind: 'bool', short: 'h', help: 'help for vfkit' },
  ignition: { kind: 'string', help: 'path to the ignition file' },
  initrd: { kind: 'string', short: 'i', help: 'path to the virtual machine initrd' },
  kernel: { kind: 'string', short: 'k', help: 'path to the virtual machine Linux kernel' },
  'kernel-cmdline': { kind: 'string', short: 'C', help: 'Linux kernel command line' },
  'log-level': { kind: 'string', help: 'set log level' },
  memory: { kind: 'uint', short: 'm', fallback: '512', help: 'virtual machine RAM size in mibibytes' },
  nested: { kind: 'bool', short: 'n', help: 'enable nested virtualization' },
  pidfile: { kind: 'string', help: 'path to the pid file' },
  'restful-uri': { kind: 'string', fallback: 'none://', help: 'URI address for RESTful services' },
  timesync: { kind: 'string', short: 't', help: 'sync guest time when host wakes up from sleep' },
  version: { kind: 'bool', short: 'v', help: 'version for vfkit' },
};

/** cobra's usage string for the root command (what follows "Error: …" on stderr). */
export function usage(): string {
  const lines = Object.entries(FLAGS).map(([name, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : '    ';
    const type = spec.kind === 'bool' ? '' : ` ${spec.kind}`;
    const quoted = spec.kind === 'string' ? `"${spec.fallback}"` : spec.fallback;
    const fallback = spec.fallback && spec.kind !== 'stringArray' ? ` (default ${quoted})` : '';
    return `  ${short}--${name}${type}   ${spec.help}${fallback}`;
  });
  return ['Usage:', '  vfkit [flags]', '', 'Flags:', ...lines, ''].join('\n');
}

/** What the flags held after parsing: one entry per flag that was set (arrays accumulate). */
export type ParsedFlags = Map<string, string | string[] | boolean>;

function flagTitle(name: string): string {
  const spec = FLAGS[name]!;
  return spec.short ? `-${spec.short}, --${name}` : `--${name}`;
}

/** pkg/cmdline/string_slice.go parseString: commas split, except inside double quotes (kept); `"a"` loses its quotes. */
export function parseStringSlice(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  const trim = (s: string): string => (s.startsWith('"') && s.endsWith('"') ? s.replace(/^"+|"+$/g, '') : s);
  for (const c of value) {
    if (quoted) {
      if (c === '"') quoted = false;
      current += c;
      continue;
    }
    if (c === ',') {
      out.push(trim(current));
      current = '';
      continue;
    }
    if (c === '"') quoted = true;
    current += c;
  }
  if (quoted) throw new Error('mismatched "');
  const last = trim(current);
  if (out.length !== 0 || last.length !== 0) out.push(last);
  return out;
}

/** pflag's value parsing per type; the error is pflag's "invalid argument" text. */
function setFlag(flags: ParsedFlags, name: string, value: string): void {
  const spec = FLAGS[name]!;
  const invalid = (why: string): VfkitUsageError =>
    new VfkitUsageError(`invalid argument ${JSON.stringify(value)} for "${flagTitle(name)}" flag: ${why}`);
  switch (spec.kind) {
    case 'uint':
      // strconv.ParseUint(s, 0, 64): decimal, 0x…, 0o…, 0b…, and `_` separators with a prefix; decimal is enough.
      if (!/^[0-9]+$/.test(value)) throw invalid(`strconv.ParseUint: parsing ${JSON.stringify(value)}: invalid syntax`);
      if (BigInt(value) > 0xffffffffffffffffn) {
        throw invalid(`strconv.ParseUint: parsing ${JSON.stringify(value)}: value out of range`);
      }
      flags.set(name, value);
      return;
    case 'bool': {
      const truth = ['1', 't', 'T', 'TRUE', 'true', 'True'];
      const lie = ['0', 'f', 'F', 'FALSE', 'false', 'False'];
      if (!truth.includes(value) && !lie.includes(value)) {
        throw invalid(`strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`);
      }
      flags.set(name, truth.includes(value));
      return;
    }
    case 'stringArray':
      flags.set(name, [...((flags.get(name) as string[] | undefined) ?? []), value]);
      return;
    case 'stringSlice': {
      let parsed: string[];
      try {
        parsed = parseStringSlice(value);
      } catch (error) {
        throw invalid((error as Error).message);
      }
      flags.set(name, [...((flags.get(name) as string[] | undefined) ?? []), ...parsed]);
      return;
    }
    case 'string':
      flags.set(name, value);
  }
}

/** spf13/pflag FlagSet.Parse as cobra calls it: long and short flags, `=` or a separate value, `--` ends flags. */
export function parseFlags(argv: readonly string[]): ParsedFlags {
  const flags: ParsedFlags = new Map();
  const shortNames = new Map(
    Object.entries(FLAGS)
      .filter(([, spec]) => spec.short)
      .map(([name, spec]) => [spec.short!, name]),
  );
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (arg.startsWith('--')) {
      const [name, inline] = splitOnce(arg.slice(2), '=');
      const spec = FLAGS[name];
      if (!spec) throw new VfkitUsageError(`unknown flag: --${name}`);
      if (inline !== undefined) setFlag(flags, name, inline);
      else if (spec.kind === 'bool') setFlag(flags, name, 'true');
      else if (i + 1 < argv.length) setFlag(flags, name, argv[++i]!);
      else throw new VfkitUsageError(`flag needs an argument: --${name}`);
    } else if (arg.startsWith('-') && arg.length > 1) {
      let shorts = arg.slice(1);
      while (shorts.length > 0) {
        const c = shorts[0]!;
        const name = shortNames.get(c);
        if (!name) throw new VfkitUsageError(`unknown shorthand flag: '${c}' in -${shorts}`);
        const spec = FLAGS[name]!;
        if (shorts[1] === '=') {
          setFlag(flags, name, shorts.slice(2));
          break;
        }
        if (spec.kind === 'bool') {
          setFlag(flags, name, 'true');
          shorts = shorts.slice(1);
        } else if (shorts.length > 1) {
          setFlag(flags, name, shorts.slice(1));
          break;
        } else if (i + 1 < argv.length) {
          setFlag(flags, name, argv[++i]!);
          break;
        } else {
          throw new VfkitUsageError(`flag needs an argument: '${c}' in -${c}`);
        }
      }
    }
    // Anything else is a positional argument, which the root command accepts and ignores.
  }
  return flags;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

/** cobra's flag groups (MarkFlagsMutuallyExclusive, MarkFlagsRequiredTogether), checked before RunE. */
function checkFlagGroups(flags: ParsedFlags): void {
  for (const other of ['kernel', 'initrd', 'kernel-cmdline']) {
    if (flags.has(other) && flags.has('bootloader')) {
      const set = [other, 'bootloader'].sort().join(' ');
      throw new VfkitUsageError(
        `if any flags in the group [${other} bootloader] are set none of the others can be; [${set}] were all set`,
      );
    }
  }
  const together = ['kernel', 'initrd', 'kernel-cmdline'];
  const missing = together.filter((name) => !flags.has(name));
  if (missing.length > 0 && missing.length < together.length) {
    throw new VfkitUsageError(
      `if any flags in the group [${together.join(' ')}] are set they must all be set; missing [${missing.sort().join(' ')}]`,
    );
  }
}

interface Option {
  readonly key: string;
  readonly value: string;
}

/** strvToOptions: `key[=value]`, empty strings skipped. */
function toOptions(items: readonly string[]): Option[] {
  return items
    .filter((item) => item.length > 0)
    .map((item) => {
      const [key, value] = splitOnce(item, '=');
      return { key, value: value ?? '' };
    });
}

function trimQuotes(value: string): string {
  return value.startsWith('"') && value.endsWith('"') ? value.replace(/^"+|"+$/g, '') : value;
}

export interface LinuxBootloader {
  readonly kernel: string;
  readonly initrd: string;
  readonly cmdline: string;
}

export interface BlockDevice {
  readonly kind: 'virtio-blk';
  readonly path: string;
  readonly readOnly: boolean;
  readonly deviceId: string | undefined;
}
export interface NetDevice {
  readonly kind: 'virtio-net';
  readonly nat: boolean;
  readonly mac: string | undefined;
}
export interface SerialDevice {
  readonly kind: 'virtio-serial';
  readonly logFile: string;
}
export interface VsockDevice {
  readonly kind: 'virtio-vsock';
  readonly port: number;
  readonly socketURL: string;
  /** true: the guest connects to a host socket; false (`connect`): the host connects through a socket vfkit makes. */
  readonly listen: boolean;
}
export interface RngDevice {
  readonly kind: 'virtio-rng';
}
export type Device = BlockDevice | NetDevice | SerialDevice | VsockDevice | RngDevice;
/** A shared directory: parsed so its options are checked, but refused by parseCommandLine (the fake shares nothing). */
export interface FsDevice {
  readonly kind: 'virtio-fs';
  readonly sharedDir: string;
  /** Unset: vfkit mounts it by the directory's base name (pkg/vf/virtio.go VirtioFs.toVz). */
  readonly mountTag: string | undefined;
}

/** What a command line configures (config.VirtualMachine), as far as the fake emulates it. */
export interface VfkitConfig {
  readonly cpus: number;
  readonly memoryMiB: number;
  readonly bootloader: LinuxBootloader;
  readonly devices: readonly Device[];
  readonly restfulUri: string;
  readonly logLevel: string | undefined;
}

/** config.BootloaderFromCmdLine for `linux` (efi and macos are not emulated). */
function parseBootloader(items: readonly string[]): LinuxBootloader {
  if (items.length < 1) throw new VfkitUsageError('empty option list in --bootloader command line argument');
  const type = items[0]!;
  if (type === 'efi' || type === 'macos') throw new NotEmulatedError(`--bootloader ${type}`);
  if (type !== 'linux') throw new VfkitUsageError(`unknown bootloader type: ${type}`);
  let kernel = '';
  let initrd = '';
  let cmdline = '';
  for (const { key, value } of toOptions(items.slice(1))) {
    if (key === 'kernel') kernel = value;
    else if (key === 'initrd') initrd = value;
    else if (key === 'cmdline') cmdline = trimQuotes(value);
    else throw new VfkitUsageError(`unknown option for Linux bootloaders: ${key}`);
  }
  return { kernel, initrd, cmdline };
}

const GO_MAC = /^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$/;

/** deviceFromCmdLine: a plain split on commas (no quoting), then the device type's FromOptions. */
export function parseDevice(value: string): Device | FsDevice {
  const [type, ...rest] = value.split(',');
  const options = toOptions(rest);
  switch (type) {
    case 'virtio-blk':
      return parseBlock(options);
    case 'virtio-net':
      return parseNet(options);
    case 'virtio-serial':
      return parseSerial(options);
    case 'virtio-vsock':
      return parseVsock(options);
    case 'virtio-fs':
      return parseFs(options);
    case 'virtio-rng':
      if (options.length !== 0) {
        throw new VfkitUsageError(
          `unknown options for virtio-rng devices: [${options.map((o) => `{${o.key} ${o.value}}`).join(' ')}]`,
        );
      }
      return { kind: 'virtio-rng' };
    case 'rosetta':
    case 'nvme':
    case 'usb-mass-storage':
    case 'virtio-input':
    case 'virtio-gpu':
    case 'virtio-balloon':
    case 'nbd':
      throw new NotEmulatedError(`--device ${type}`);
    default:
      throw new VfkitUsageError(`unknown device type: ${type}`);
  }
}

/** VirtioBlk.FromOptions: deviceId, then DiskStorageConfig.FromOptions (path, type, readonly). */
function parseBlock(options: readonly Option[]): BlockDevice {
  let path = '';
  let readOnly = false;
  let deviceId: string | undefined;
  for (const { key, value } of options) {
    if (key === 'deviceId') deviceId = value;
    else if (key === 'path') path = value;
    else if (key === 'type') {
      if (!['', 'image', 'dev'].includes(value)) {
        throw new VfkitUsageError(`unexpected value for disk 'type' option: ${value}`);
      }
      if (value === 'dev') throw new NotEmulatedError('virtio-blk type=dev');
    } else if (key === 'readonly') {
      if (value !== '') throw new VfkitUsageError(`unexpected value for virtio-blk 'readonly' option: ${value}`);
      readOnly = true;
    } else throw new VfkitUsageError(`unknown option for virtio-blk devices: ${key}`);
  }
  return { kind: 'virtio-blk', path, readOnly, deviceId };
}

/** VirtioNet.FromOptions + validate, for `nat` (the socket and fd attachments are not emulated). */
function parseNet(options: readonly Option[]): NetDevice {
  let nat = false;
  let mac: string | undefined;
  for (const { key, value } of options) {
    if (key === 'nat') {
      if (value !== '') throw new VfkitUsageError(`unexpected value for virtio-net 'nat' option: ${value}`);
      nat = true;
    } else if (key === 'mac') {
      if (!GO_MAC.test(value)) throw new VfkitUsageError(`address ${value}: invalid MAC address`);
      mac = value.toLowerCase().replaceAll('-', ':');
    } else if (['fd', 'unixSocketPath', 'type', 'path', 'vfkitMagic', 'offloading'].includes(key)) {
      throw new NotEmulatedError(`virtio-net ${key}`);
    } else throw new VfkitUsageError(`unknown option for virtio-net devices: ${key}`);
  }
  if (!nat) throw new VfkitUsageError("one of 'nat' or 'fd' or 'unixSocketPath' must be set");
  return { kind: 'virtio-net', nat, mac };
}

/** VirtioSerial.FromOptions + validate. */
function parseSerial(options: readonly Option[]): SerialDevice {
  let logFile = '';
  let stdio = false;
  let pty = false;
  for (const { key, value } of options) {
    if (key === 'logFilePath') logFile = value;
    else if (key === 'stdio') {
      if (value !== '') throw new VfkitUsageError(`unexpected value for virtio-serial 'stdio' option: ${value}`);
      stdio = true;
    } else if (key === 'pty') pty = true;
    else throw new VfkitUsageError(`unknown option for virtio-serial devices: ${key}`);
  }
  if (logFile && stdio) throw new VfkitUsageError("'logFilePath' and 'stdio' cannot be set at the same time");
  if (logFile && pty) throw new VfkitUsageError("'logFilePath' and 'pty' cannot be set at the same time");
  if (stdio && pty) throw new VfkitUsageError("'stdio' and 'pty' cannot be set at the same time");
  if (!logFile && !stdio && !pty) throw new VfkitUsageError("one of 'logFilePath', 'stdio' or 'pty' must be set");
  if (!logFile) throw new NotEmulatedError(`virtio-serial ${stdio ? 'stdio' : 'pty'}`);
  return { kind: 'virtio-serial', logFile };
}

/** VirtioVsock.FromOptions: `listen` is the default "for backwards compatibility"; nothing is validated here. */
function parseVsock(options: readonly Option[]): VsockDevice {
  let port = 0;
  let socketURL = '';
  let listen = true;
  for (const { key, value } of options) {
    if (key === 'socketURL') socketURL = value;
    else if (key === 'port') {
      if (!/^[0-9]+$/.test(value)) {
        throw new VfkitUsageError(`strconv.ParseUint: parsing ${JSON.stringify(value)}: invalid syntax`);
      }
      if (Number(value) > 0xffffffff) {
        throw new VfkitUsageError(`strconv.ParseUint: parsing ${JSON.stringify(value)}: value out of range`);
      }
      port = Number(value);
    } else if (key === 'listen') listen = true;
    else if (key === 'connect') listen = false;
    else throw new VfkitUsageError(`unknown option for virtio-vsock devices: ${key}`);
  }
  return { kind: 'virtio-vsock', port, socketURL, listen };
}

/** VirtioFs.FromOptions: both options are plain strings; a missing `sharedDir` is refused only when the VM is built. */
function parseFs(options: readonly Option[]): FsDevice {
  let sharedDir = '';
  let mountTag: string | undefined;
  for (const { key, value } of options) {
    if (key === 'sharedDir') sharedDir = value;
    else if (key === 'mountTag') mountTag = value;
    else throw new VfkitUsageError(`unknown option for virtio-fs devices: ${key}`);
  }
  return { kind: 'virtio-fs', sharedDir, mountTag };
}

/** The devices the fake can run a VM with: a shared directory is refused, never silently left out. */
function emulated(device: Device | FsDevice): Device {
  if (device.kind === 'virtio-fs') throw new NotEmulatedError('--device virtio-fs');
  return device;
}

/** rest.NewEndpoint's checks (parseRestfulURI, toRestScheme); returns the Unix socket path, or undefined for none. */
export function restSocketPath(uri: string): string | undefined {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/.exec(uri);
  if (!match) throw new VfkitUsageError(`parse ${JSON.stringify(uri)}: invalid URI for request`);
  const scheme = match[1]!;
  const rest = match[2]!;
  if (scheme === 'none') return undefined;
  if (scheme === 'tcp' || scheme === 'http') throw new NotEmulatedError(`--restful-uri ${scheme}://`);
  if (scheme !== 'unix') throw new VfkitUsageError(`invalid scheme ${scheme}`);
  // url.ParseRequestURI: `//host/path`, `/path`, or an opaque rest (no path at all).
  const authority = rest.startsWith('//') ? /^\/\/([^/]*)(.*)$/.exec(rest) : null;
  const host = authority ? authority[1]! : '';
  const path = authority ? authority[2]! : rest.startsWith('/') ? rest : '';
  if (path.length < 1) throw new VfkitUsageError('invalid unix uri: missing path');
  if (host.length > 0) throw new VfkitUsageError('invalid unix uri: host is forbidden');
  // macOS sockaddr_un.sun_path is 104 bytes, one of them the NUL.
  if (path.length > 103) throw new VfkitUsageError('invalid unix uri: socket path length exceeds macOS limits');
  return decodeURIComponent(path);
}

/** What the command line asks for: help, the version, or a VM. */
export type Invocation =
  { readonly kind: 'help' } | { readonly kind: 'version' } | { readonly kind: 'run'; readonly config: VfkitConfig };

/** The whole command line, in the order vfkit checks it (cobra flags and groups, then RunE's newVMConfiguration). */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const flags = parseFlags(argv);
  if (flags.get('help') === true) return { kind: 'help' };
  if (flags.get('version') === true) return { kind: 'version' };
  checkFlagGroups(flags);
  const logLevel = flags.get('log-level') as string | undefined;
  if (logLevel !== undefined && !['error', 'debug', 'info'].includes(logLevel)) {
    throw new VfkitUsageError(`unknown log level: ${logLevel}`);
  }
  for (const name of ['kernel', 'timesync', 'cloud-init', 'pidfile', 'ignition', 'gui', 'nested']) {
    if (flags.has(name)) throw new NotEmulatedError(`--${name}`);
  }
  const bootloader = parseBootloader((flags.get('bootloader') as string[] | undefined) ?? []);
  const devices = ((flags.get('device') as string[] | undefined) ?? []).map((value) => emulated(parseDevice(value)));
  const uint = (name: string): number => Number(flags.get(name) ?? FLAGS[name]!.fallback);
  return {
    kind: 'run',
    config: {
      cpus: uint('cpus'),
      memoryMiB: uint('memory'),
      bootloader,
      devices,
      restfulUri: (flags.get('restful-uri') as string | undefined) ?? FLAGS['restful-uri']!.fallback!,
      logLevel,
    },
  };
}
