/**
 * A stand-in for the `vfkit` binary off macOS: `node fake-vfkit.js <vfkit args>`. It behaves as vfkit does at
 * crc-org/vfkit@b2bc27e50b6103a8f6664ad599fbd3fc0970797f:
 * - command line: cmdline.ts (cobra/pflag flags, device and bootloader options, their error texts);
 * - start-up: cmd/vfkit/main.go (newVMConfiguration, runVFKit, runVirtualMachine): the REST API opens before the VM
 *   starts, vsock ports are exposed once it runs, vfkit exits 0 when the VM stops and 1 on a start-up error;
 * - REST: pkg/rest/rest.go and pkg/rest/vf/{vm_config,state_change}.go (gin: JSON bodies, 202 on a state change, 400
 *   for an unbindable body, 500 `{"error"}` when VZ refuses, a text 404 for any other route);
 * - VM states and transitions: Code-Hex/vz v3.7.1 (virtualization.go: VirtualMachineState, canPause/canResume/
 *   canRequestStop/canStop). VZ's own error texts are not in any source we can read: the invalid-transition text is the
 *   one users report ("Invalid virtual machine state transition. Transition from state "error" to state "pausing" is
 *   invalid."), formatted by Code-Hex/vz's NSError.Error();
 * - vsock in `connect` mode: pkg/vf/vsock.go over inetaf/tcpproxy@c4b9df06 (accept, then dial the guest port; a failed
 *   dial is logged and the accepted connection closed; data is copied both ways with half-closes).
 * The guest is the real jitvm agent in dev mode (test/helpers/firecracker/fake-guest.ts), listening on vsock port 1024.
 *
 * Environment: FAKE_VFKIT_VERSION (what --version says, default v0.6.1), FAKE_VFKIT_AGENT (the agent binary),
 * FAKE_VFKIT_GOARCH (amd64 or arm64: the Mac it pretends to be, default this host's), FAKE_VFKIT_IGNORE_STOP=1 (the
 * guest ignores a stop request), FAKE_VFKIT_BOOT_MS (how long the guest takes to start its agent, default 0),
 * FAKE_VFKIT_RECORD (a file that gets one JSON line for the argv and per request).
 */
import { appendFileSync, closeSync, openSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { type Server, type Socket, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_VSOCK_PORT } from '../../../src/channel/protocol.js';
import { FakeGuest } from '../firecracker/fake-guest.js';
import {
  NotEmulatedError,
  type VfkitConfig,
  VfkitUsageError,
  type VsockDevice,
  parseCommandLine,
  restSocketPath,
  usage,
} from './cmdline.js';

const VERSION = process.env.FAKE_VFKIT_VERSION ?? 'v0.6.1';
const GOARCH = process.env.FAKE_VFKIT_GOARCH ?? (process.arch === 'arm64' ? 'arm64' : 'amd64');
const RECORD = process.env.FAKE_VFKIT_RECORD || undefined;
/** How long the guest kernel "boots" before its init (the agent) runs and listens on vsock. */
const BOOT_MS = Number(process.env.FAKE_VFKIT_BOOT_MS ?? 0);
/** How long VZ takes for a start or a pause in the fake (its intermediate states are visible for that long). */
const TRANSITION_MS = 20;

function record(entry: object): void {
  if (RECORD) appendFileSync(RECORD, `${JSON.stringify(entry)}\n`);
}

/** logrus's text format on a non-terminal stderr. */
function log(level: 'info' | 'warning' | 'error' | 'fatal' | 'debug', msg: string): void {
  const time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  process.stderr.write(`time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`);
}

/** Go's log.Printf (used by tcpproxy). */
function goLog(msg: string): void {
  const d = new Date();
  const pad = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  process.stderr.write(`${stamp} ${msg}\n`);
}

/** RunE returned an error (or cobra refused the flags): "Error: …", the usage, then main() prints it again; exit 1. */
function fail(message: string): never {
  process.stderr.write(`Error: ${message}\n${usage()}\n\n${message}\n`);
  process.exit(1);
}

/** Go's *fs.PathError text for an errno from Node. */
function goPathError(op: string, path: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const text: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
    ENOTDIR: 'not a directory',
  };
  return `${op} ${path}: ${(code && text[code]) ?? (error as Error).message}`;
}

/** VirtioBlk.validate (AddDevicesFromCmdLine): the image must open, have a header, and not be qcow2. */
function validateDisks(config: VfkitConfig): void {
  for (const device of config.devices) {
    if (device.kind !== 'virtio-blk') continue;
    let fd: number;
    try {
      fd = openSync(device.path, 'r');
    } catch (error) {
      fail(`failed to open file ${device.path}: ${goPathError('open', device.path, error)}`);
    }
    const header = Buffer.alloc(4);
    let read = 0;
    try {
      read = readSync(fd, header, 0, 4, 0);
    } catch (error) {
      fail(`failed to read the header of file ${device.path}: ${goPathError('read', device.path, error)}`);
    } finally {
      closeSync(fd);
    }
    if (read === 0) fail(`failed to read the header of file ${device.path}: EOF`);
    if (header.toString('latin1') === 'QFI\xfb') fail('vfkit does not support qcow2 image format');
  }
}

/** vf.NewVirtualMachine's bootloader part (pkg/vf/bootloader.go, Code-Hex/vz bootloader.go). */
function checkBootloader(config: VfkitConfig): void {
  const { kernel, initrd } = config.bootloader;
  if (GOARCH === 'arm64') {
    let head: Buffer;
    try {
      const fd = openSync(kernel, 'r');
      head = Buffer.alloc(2048);
      const n = readSync(fd, head, 0, 2048, 0);
      closeSync(fd);
      if (n === 0) fail('EOF');
    } catch (error) {
      fail(goPathError('open', kernel, error));
    }
    if (head.subarray(0x38, 0x3c).toString('latin1') !== 'ARMd') {
      fail(`kernel must be uncompressed, ${kernel} is a compressed file`);
    }
  }
  for (const [path, what] of [
    [kernel, 'invalid linux kernel path'],
    [initrd, 'invalid initial RAM disk path'],
  ] as const) {
    try {
      statSync(path);
    } catch (error) {
      fail(`${what}: ${goPathError('stat', path, error)}`);
    }
  }
}

type VzState = 'Stopped' | 'Running' | 'Paused' | 'Error' | 'Starting' | 'Pausing' | 'Resuming' | 'Stopping';

/** A VZ call refused: Code-Hex/vz NSError.Error() text; vfkit answers it with HTTP 500. */
class VzError extends Error {}

function nsError(code: number, description: string, reason: string): VzError {
  const userInfo = `{\n    NSLocalizedFailure = "${description}";\n    NSLocalizedFailureReason = ${JSON.stringify(reason)};\n}`;
  return new VzError(
    `Error Domain=VZErrorDomain Code=${code} Description=${JSON.stringify(`${description} ${reason}`)} UserInfo=${userInfo}`,
  );
}

/** VZErrorInvalidVirtualMachineStateTransition (4). */
function transitionError(from: VzState, to: string): VzError {
  return nsError(
    4,
    'Invalid virtual machine state transition.',
    `Transition from state "${from.toLowerCase()}" to state "${to}" is invalid.`,
  );
}

/** The VM behind vfkit: VZ's state machine, the guest, the vsock proxies. */
class FakeVm {
  state: VzState = 'Stopped';
  private guest: FakeGuest | undefined;
  private readonly proxies: Server[] = [];
  private readonly proxySockets: string[] = [];
  private readonly connections = new Set<Socket>();
  private readonly heldDials: (() => void)[] = [];
  private stopHandlers: (() => void)[] = [];

  constructor(
    private readonly config: VfkitConfig,
    private readonly onStopped: () => void,
  ) {}

  get canStart(): boolean {
    return this.state === 'Stopped' || this.state === 'Error';
  }
  get canPause(): boolean {
    return this.state === 'Running';
  }
  get canResume(): boolean {
    return this.state === 'Paused';
  }
  get canRequestStop(): boolean {
    return this.state === 'Running';
  }
  get canStop(): boolean {
    return this.state === 'Running' || this.state === 'Paused';
  }

  /** vm.Start(), then waitForVMState(Running) and the rest of runVirtualMachine. */
  async start(): Promise<void> {
    this.state = 'Starting';
    await sleep(TRANSITION_MS);
    this.state = 'Running';
    log('info', 'virtual machine is running');
    const cmdline = this.config.bootloader.cmdline;
    const args = cmdline.split(/\s+/);
    const serial = this.config.devices.find((d) => d.kind === 'virtio-serial');
    const console = serial && args.includes('console=hvc0') ? serial.logFile : undefined;
    this.guest = new FakeGuest({
      agent: process.env.FAKE_VFKIT_AGENT || undefined,
      agentSocket: join(tmpdir(), `jitvm-fake-vfkit-${process.pid}.sock`),
      console: console ? (text) => appendFileSync(console, text) : undefined,
      quiet: args.includes('quiet'),
      ignoreCtrlAltDel: process.env.FAKE_VFKIT_IGNORE_STOP === '1',
      // The agent as PID 1 ended (power-off, or a panic with panic=1): VZ stops the VM.
      onReboot: () => this.stopped(),
    });
    for (const device of this.config.devices) {
      if (device.kind !== 'virtio-vsock' || device.socketURL === '') continue;
      log('info', `Exposing vsock port ${device.port} on ${device.socketURL}${device.listen ? ' (listening)' : ''}`);
      if (!device.listen) await this.exposeConnect(device);
    }
    log('info', 'waiting for VM to stop');
    // Until the guest's init listens, every dial through the vsock proxy is refused.
    await sleep(BOOT_MS);
    if ((this.state as VzState) !== 'Stopped') await this.guest.start(cmdline, false);
  }

  /** connectVsock: vfkit listens on the host socket; each connection it accepts is dialled through to the guest. */
  private async exposeConnect(device: VsockDevice): Promise<void> {
    const server = createNetServer({ pauseOnConnect: true }, (host) => this.accept(host, device.port));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(device.socketURL, () => resolve());
      });
    } catch (error) {
      log('warning', `error exposing vsock port ${device.port}: ${goListenError(device.socketURL, error)}`);
      return;
    }
    this.proxies.push(server);
    this.proxySockets.push(device.socketURL);
  }

  private accept(host: Socket, port: number): void {
    host.on('error', () => host.destroy());
    this.connections.add(host);
    host.once('close', () => this.connections.delete(host));
    // A paused guest cannot answer the dial: it waits until the VM runs again.
    if (this.state === 'Paused' || this.state === 'Pausing') this.heldDials.push(() => this.dial(host, port));
    else this.dial(host, port);
  }

  /** DialProxy.HandleConn: dial the guest port; on failure log and close the accepted connection. */
  private dial(host: Socket, port: number): void {
    if (host.destroyed) return;
    const pending = port === AGENT_VSOCK_PORT ? this.guest?.connectAgent() : undefined;
    if (!pending) {
      goLog(
        `tcpproxy: for incoming conn , error dialing "vsock:${port}": Error Domain=NSPOSIXErrorDomain Code=54 ` +
          '"Connection reset by peer"',
      );
      host.destroy();
      return;
    }
    void pending.then((guest) => {
      if (host.destroyed) {
        guest.destroy();
        return;
      }
      this.connections.add(guest);
      guest.once('close', () => this.connections.delete(guest));
      guest.on('error', () => guest.destroy());
      splice(host, guest);
      splice(guest, host);
      let open = 2;
      const done = (): void => {
        if (--open === 0) {
          host.destroy();
          guest.destroy();
        }
      };
      host.once('end', done);
      guest.once('end', done);
      host.once('close', () => guest.destroy());
      guest.once('close', () => host.destroy());
      host.resume();
    });
  }

  /** VzVirtualMachine.ChangeState. */
  async change(requested: string): Promise<void> {
    switch (requested) {
      case 'Pause':
        if (this.state !== 'Running') throw transitionError(this.state, 'pausing');
        this.state = 'Pausing';
        this.guest?.pause();
        await sleep(TRANSITION_MS);
        this.state = 'Paused';
        return;
      case 'Resume':
        if (this.state !== 'Paused') throw transitionError(this.state, 'resuming');
        this.state = 'Resuming';
        this.guest?.resume();
        await sleep(TRANSITION_MS);
        this.state = 'Running';
        for (const dial of this.heldDials.splice(0)) dial();
        return;
      case 'Stop':
        this.requestStop();
        return;
      case 'HardStop':
        if (!this.canStop) throw transitionError(this.state, 'stopping');
        this.state = 'Stopping';
        // The completion handler runs once VZ stopped the VM; vfkit's main loop then exits, racing this answer.
        setTimeout(() => this.stopped(), TRANSITION_MS);
        return;
      default:
        throw new Error(`invalid new VMState: ${requested}`);
    }
  }

  /** VZ requestStop: the guest sees its power button (the agent shuts down in order, as on Ctrl-Alt-Del). */
  requestStop(): void {
    if (!this.canRequestStop) {
      throw nsError(
        3,
        'Invalid virtual machine state.',
        `The virtual machine must be "running" to request a stop, it is currently "${this.state.toLowerCase()}".`,
      );
    }
    this.guest?.ctrlAltDel();
  }

  /** VZ stop(): at once, from Running or Paused. */
  forceStop(): void {
    if (this.canStop) this.stopped();
  }

  onceStopped(handler: () => void): void {
    if (this.state === 'Stopped') handler();
    else this.stopHandlers.push(handler);
  }

  /** The VM stopped: the guest is gone, the proxies close (removing their sockets), vfkit exits. */
  private stopped(): void {
    if (this.state === 'Stopped') return;
    this.state = 'Stopped';
    this.guest?.stop();
    for (const connection of this.connections) connection.destroy();
    for (const server of this.proxies) server.close();
    for (const path of this.proxySockets) rmSync(path, { force: true });
    for (const handler of this.stopHandlers.splice(0)) handler();
    this.onStopped();
  }

  inspect(): object {
    const { config } = this;
    return {
      vcpus: config.cpus,
      memoryBytes: config.memoryMiB * 1024 * 1024,
      bootloader: {
        kind: 'linuxBootloader',
        vmlinuzPath: config.bootloader.kernel,
        kernelCmdLine: config.bootloader.cmdline,
        initrdPath: config.bootloader.initrd,
      },
      devices: config.devices.map((device) => {
        switch (device.kind) {
          case 'virtio-blk':
            return {
              kind: 'virtioblk',
              devName: 'virtio-blk',
              ...(device.readOnly ? { readOnly: true } : {}),
              imagePath: device.path,
              ...(device.deviceId ? { deviceIdentifier: device.deviceId } : {}),
            };
          case 'virtio-vsock':
            return {
              kind: 'virtiosock',
              port: device.port,
              socketURL: device.socketURL,
              ...(device.listen ? { listen: true } : {}),
            };
          case 'virtio-serial':
            return { kind: 'virtioserial', logFile: device.logFile };
          case 'virtio-net':
            return { kind: 'virtionet', nat: device.nat, ...(device.mac ? { macAddress: device.mac } : {}) };
          case 'virtio-rng':
            return { kind: 'virtiorng' };
        }
      }),
    };
  }
}

/** One direction of a tcpproxy copy: back-pressure, and a half-close (closeWrite) when the source ends. */
function splice(from: Socket, to: Socket): void {
  from.on('data', (data: Buffer) => {
    if (!to.write(data)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
}

function goListenError(path: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const why = code === 'EADDRINUSE' ? 'address already in use' : (error as Error).message;
  return `listen unix ${path}: bind: ${why}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** gin's JSON answer (encoding/json of a gin.H: keys sorted). */
function json(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const sorted = Object.fromEntries(Object.entries(body).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(sorted));
}

function goJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'object';
  return typeof value === 'boolean' ? 'bool' : typeof value;
}

/**
 * c.ShouldBindJSON(&define.VMState): json.Decoder.Decode of the first JSON value. Go's texts for an empty body and a
 * wrong type are exact; a syntax error's position wording is approximated.
 */
function bindState(text: string): string {
  if (text.trim() === '') throw new Error('EOF');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const c = text.trim()[0];
    throw new Error(`invalid character '${c}' looking for beginning of value`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    if (value === null) return '';
    throw new Error(`json: cannot unmarshal ${goJsonType(value)} into Go value of type define.VMState`);
  }
  const state = (value as Record<string, unknown>).state;
  if (state === undefined || state === null) return '';
  if (typeof state !== 'string') {
    throw new Error(`json: cannot unmarshal ${goJsonType(state)} into Go struct field VMState.state of type string`);
  }
  return state;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The gin router of rest.NewServer. */
async function serve(vm: FakeVm, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://vfkit').pathname;
  const body = await readBody(req);
  const answer = (status: number, payload?: Record<string, unknown>): void => {
    record({ kind: 'request', method: req.method, path, body: body === '' ? null : body, status, ...payload });
    if (payload) json(res, status, payload);
    else {
      res.writeHead(status);
      res.end();
    }
  };
  if (req.method === 'GET' && path === '/vm/state') {
    answer(200, {
      state: `VirtualMachineState${vm.state}`,
      canStart: vm.canStart,
      canPause: vm.canPause,
      canResume: vm.canResume,
      canStop: vm.canRequestStop,
      canHardStop: vm.canStop,
    });
  } else if (req.method === 'POST' && path === '/vm/state') {
    let state: string;
    try {
      state = bindState(body);
    } catch (error) {
      answer(400, { error: (error as Error).message });
      return;
    }
    try {
      await vm.change(state);
    } catch (error) {
      log('error', `failed action ${state}: ${JSON.stringify((error as Error).message)}`);
      answer(500, { error: (error as Error).message });
      return;
    }
    answer(202);
  } else if (req.method === 'GET' && path === '/vm/inspect') {
    record({ kind: 'request', method: req.method, path, body: null, status: 200 });
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(vm.inspect()));
  } else {
    record({ kind: 'request', method: req.method, path, body: body === '' ? null : body, status: 404 });
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('404 page not found');
  }
}

/** Agent sockets of fake processes that were killed before they could remove them. */
function sweepStaleAgentSockets(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = /^jitvm-fake-vfkit-(\d+)\.sock$/.exec(name)?.[1];
    if (!pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch {
      rmSync(join(tmpdir(), name), { force: true });
    }
  }
}

async function run(config: VfkitConfig): Promise<void> {
  if (config.logLevel === 'debug') log('debug', `parsed options: ${JSON.stringify(config)}`);
  log('info', 'virtual machine parameters:');
  log('info', `\tvCPUs: ${config.cpus}`);
  log('info', `\tmemory: ${config.memoryMiB} MiB`);
  log('info', '');
  validateDisks(config);
  checkBootloader(config);
  for (const device of config.devices) {
    if (device.kind === 'virtio-blk') log('info', `Adding virtio-blk device (imagePath: ${device.path}, type: image)`);
    if (device.kind === 'virtio-serial') {
      log('info', `Adding virtio-serial device (logFile: ${device.logFile})`);
      try {
        writeFileSync(device.logFile, ''); // VZFileSerialPortAttachment, append: false
      } catch (error) {
        fail(
          `Error Domain=NSCocoaErrorDomain Code=4 Description=${JSON.stringify(goPathError('open', device.logFile, error))}`,
        );
      }
    }
  }
  let restPath: string | undefined;
  try {
    restPath = restSocketPath(config.restfulUri);
  } catch (error) {
    if (error instanceof VfkitUsageError) fail(error.message);
    throw error;
  }
  sweepStaleAgentSockets();
  const exit = (): never => {
    if (restPath) rmSync(restPath, { force: true }); // the exit handler rest.Start registered, and RunUnix's defer
    process.exit(0);
  };
  const vm = new FakeVm(config, () => setImmediate(exit));
  if (restPath) {
    const server = createServer((req, res) => void serve(vm, req, res));
    server.once('error', (error) => {
      log('fatal', goListenError(restPath!, error));
      process.exit(1);
    });
    server.listen(restPath);
  }
  // util.SetupExitSignalHandling: a stop request, 5 s for the VM to stop, then a forced stop.
  const shutdown = (signal: string): void => {
    goLog(`captured ${signal}, calling exit handlers and exiting..`);
    try {
      vm.requestStop();
    } catch (error) {
      log('error', `failed to shutdown VM: ${(error as Error).message}`);
    }
    const timer = setTimeout(() => {
      log('warning', 'failed to wait for VM stop: timeout waiting for VM state, forcing stop');
      vm.forceStop();
    }, 5000);
    vm.onceStopped(() => clearTimeout(timer));
  };
  process.on('SIGTERM', () => shutdown('terminated'));
  process.on('SIGINT', () => shutdown('interrupt'));
  process.on('SIGPIPE', () => undefined);
  await vm.start();
}

function main(argv: readonly string[]): void {
  let invocation;
  try {
    invocation = parseCommandLine(argv);
  } catch (error) {
    if (error instanceof VfkitUsageError) fail(error.message);
    if (error instanceof NotEmulatedError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (invocation.kind === 'help') {
    process.stdout.write(
      `A hypervisor written in Go using Apple's Virtualization framework to run virtual machines.\n` +
        `                Complete documentation is available at https://github.com/crc-org/vfkit\n\n${usage()}`,
    );
    return;
  }
  if (invocation.kind === 'version') {
    process.stdout.write(`vfkit version: ${VERSION}\n`);
    return;
  }
  record({ kind: 'argv', argv });
  void run(invocation.config).catch((error: unknown) => {
    if (error instanceof NotEmulatedError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  });
}

main(process.argv.slice(2));
