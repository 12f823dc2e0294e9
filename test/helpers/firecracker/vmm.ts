/**
 * The fake Firecracker's API server and VMM: request parsing (src/firecracker/src/api_server/), the pre-boot and
 * runtime controllers (src/vmm/src/rpc_interface.rs) and the actions' checks and error texts (src/vmm/src/**), all
 * at firecracker@81b38b9dad6056d7a48073e95ac5a9aed51cb2ab. Requests are answered one at a time, as Firecracker does.
 */
import { appendFileSync, closeSync, existsSync, ftruncateSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type Decoded,
  SerdeError,
  type Swagger,
  contractViolations,
  decodeBody,
  emulatedOperations,
} from './contract.js';
import { FakeGuest, VsockMuxer } from './fake-guest.js';
import { hostPath, rustIoError } from './host.js';
import { API, type LoggerSettings, type MetricGroup, type MetricsSettings, VMM, logger, metrics } from './logging.js';
import { SnapshotFileError, readSnapshotFile, writeSnapshotFile } from './snapshot-file.js';

// Bodies as contract.ts decodes them, mirroring the swagger definitions (and Rust structs) of the same names.
interface TokenBucket {
  size: number;
  one_time_burst?: number;
  refill_time: number;
}
interface RateLimiter {
  bandwidth?: TokenBucket;
  ops?: TokenBucket;
}
interface BootSource {
  kernel_image_path: string;
  initrd_path?: string | null;
  boot_args?: string | null;
}
interface MachineConfig {
  vcpu_count: number;
  mem_size_mib: number;
  smt: boolean;
  cpu_template?: string;
  track_dirty_pages: boolean;
  huge_pages: string;
}
interface Drive {
  drive_id: string;
  partuuid?: string;
  is_root_device: boolean;
  cache_type?: string;
  is_read_only?: boolean;
  path_on_host?: string;
  rate_limiter?: RateLimiter;
  io_engine?: string;
  socket?: string;
}
interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  mtu?: number;
  rx_rate_limiter?: RateLimiter;
  tx_rate_limiter?: RateLimiter;
}
interface Vsock {
  vsock_id?: string;
  guest_cid: number;
  uds_path: string;
}
interface SnapshotCreate {
  snapshot_type?: string;
  snapshot_path: string;
  mem_file_path: string;
}
interface SnapshotLoad {
  snapshot_path: string;
  mem_file_path?: string;
  mem_backend?: { backend_path: string; backend_type: string };
  enable_diff_snapshots?: boolean;
  track_dirty_pages?: boolean;
  resume_vm?: boolean;
  network_overrides?: { iface_id: string; host_dev_name: string }[];
  vsock_override?: { uds_path: string };
  huge_pages?: string;
}
/** What a snapshot file holds: GET /vm/config's shape, with the boot source the guest booted from. */
interface SnapshotData {
  'boot-source': BootSource;
  'machine-config': MachineConfig;
  drives: Drive[];
  'network-interfaces': NetworkInterface[];
  vsock: { guest_cid: number; uds_path: string } | null;
}

/** A 400 whose message is the `fault_message`. `fatal`: the process exits once it is answered (a failed load). */
export class Fault extends Error {
  constructor(
    message: string,
    readonly fatal = false,
  ) {
    super(message);
  }
}

/** Where the emulation stops: refused loudly, never a 204 for work not done. */
function notEmulated(what: string): Fault {
  return new Fault(`fake firecracker: ${what} is not emulated`);
}

/** A request turned into a VmmAction: its name decides pre/post-boot rules, `run` performs it. */
interface Parsed {
  readonly action: string;
  readonly run: () => unknown;
  readonly deprecation?: string | undefined;
}

interface Outcome {
  readonly status: number;
  readonly body?: unknown;
  readonly fault?: string;
  readonly deprecation?: string | undefined;
  readonly fatal?: boolean;
}

/** One PUT/PATCH route: its swagger template, metric (METRICS.<group>.<name>_count/_fails) and path id. */
interface Route {
  readonly template: string;
  readonly metric: readonly [MetricGroup, string] | undefined;
  readonly id: 'drive_id' | 'iface_id' | undefined;
  readonly parse: (body: Decoded) => Parsed;
}

const NOT_SUPPORTED_PRE_BOOT = 'The requested operation is not supported before starting the microVM.';
const NOT_SUPPORTED_POST_BOOT = 'The requested operation is not supported after starting the microVM.';
const PRE_BOOT_ONLY = new Set([
  'ConfigureBootSource',
  'ConfigureLogger',
  'ConfigureMetrics',
  'LoadSnapshot',
  'SetVsockDevice',
  'StartMicroVm',
  'UpdateMachineConfiguration',
]);
const POST_BOOT_ONLY = new Set([
  'CreateSnapshot',
  'FlushMetrics',
  'Pause',
  'Resume',
  'UpdateBlockDevice',
  'UpdateNetworkInterface',
  'SendCtrlAltDel',
]);
const SERDE = 'An error occurred when deserializing the json body of a request:';
const CONTRACT = 'fake firecracker: the request breaks the API contract (test/fixtures/firecracker-swagger.yaml):';
/** vmm_config/boot_source.rs DEFAULT_KERNEL_CMDLINE, used when boot_args is not given. */
const DEFAULT_KERNEL_CMDLINE =
  'reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce';
/** Paths Firecracker knows but the fake does not serve. */
const NOT_EMULATED_PATHS = ['balloon', 'cpu-config', 'pmem', 'mmds', 'serial', 'entropy', 'hotplug'];

export interface VmmOptions {
  readonly version: string;
  readonly swagger: Swagger;
  readonly agent: string | undefined;
  readonly agentSocket: string;
  readonly ignoreCtrlAltDel: boolean;
  readonly record: string | undefined;
  readonly pciEnabled: boolean;
  /** Ends the process after the guest rebooted (0) or a fatal error (its message, exit code 1). */
  readonly exit: (fatal?: string) => void;
}

export class FakeVmm {
  private state: 'Not started' | 'Running' | 'Paused' = 'Not started';
  /** Boot-specific resources were configured: a snapshot can no longer be loaded (rpc_interface.rs boot_path). */
  private bootPath = false;
  private bootSource: BootSource | undefined;
  /** What the guest booted from (GET /vm/config shows only what PUT /boot-source set; snapshots keep this). */
  private booted: BootSource | undefined;
  private machine: MachineConfig = {
    vcpu_count: 1,
    mem_size_mib: 128,
    smt: false,
    track_dirty_pages: false,
    huge_pages: 'None',
  };
  private drives: Drive[] = [];
  private nets: NetworkInterface[] = [];
  private vsock: VsockMuxer | undefined;
  private vsockCid = 0;
  private guest: FakeGuest | undefined;
  /** What the swagger forbids in the request being parsed, though serde let it through. */
  private violations: string[] = [];
  private queue: Promise<void> = Promise.resolve();
  private readonly operations;
  private readonly routes: Readonly<Record<string, Route>>;

  constructor(private readonly options: VmmOptions) {
    this.operations = new Map(emulatedOperations(options.swagger).map((op) => [`${op.method} ${op.template}`, op]));
    // decodeBody checked each body against the swagger definition its T mirrors.
    const route = <T>(template: string, metric: Route['metric'], parse: (body: T) => Parsed, id?: Route['id']) =>
      ({ template, metric, id, parse: (body: Decoded) => parse(body as T) }) satisfies Route;
    const act = (action: string, run: () => unknown, deprecation?: string): Parsed => ({ action, run, deprecation });
    const put = (name: string) => ['put_api_requests', name] as const;
    const patch = (name: string) => ['patch_api_requests', name] as const;
    this.routes = {
      'PUT actions': route<{ action_type: string }>('/actions', put('actions'), ({ action_type: type }) => {
        if (type === 'InstanceStart') return act('StartMicroVm', () => this.start());
        if (type === 'SendCtrlAltDel') return act('SendCtrlAltDel', () => this.guest?.ctrlAltDel());
        return act('FlushMetrics', () => metrics.write());
      }),
      'PUT boot-source': route<BootSource>('/boot-source', put('boot_source'), (cfg) =>
        act('ConfigureBootSource', () => this.setBootSource(cfg)),
      ),
      'PUT drives': route<Drive>(
        '/drives/{drive_id}',
        put('drive'),
        (cfg) => act('InsertBlockDevice', () => this.insertDrive(cfg)),
        'drive_id',
      ),
      'PATCH drives': route<Drive>(
        '/drives/{drive_id}',
        patch('drive'),
        (cfg) => act('UpdateBlockDevice', () => this.updateDrive(cfg)),
        'drive_id',
      ),
      'PUT network-interfaces': route<NetworkInterface>(
        '/network-interfaces/{iface_id}',
        put('network'),
        (cfg) => act('InsertNetworkDevice', () => this.insertNet(cfg)),
        'iface_id',
      ),
      'PATCH network-interfaces': route<NetworkInterface>(
        '/network-interfaces/{iface_id}',
        patch('network'),
        (cfg) => act('UpdateNetworkInterface', () => this.updateNet(cfg.iface_id)),
        'iface_id',
      ),
      'PUT machine-config': route<Partial<MachineConfig>>('/machine-config', put('machine_cfg'), (cfg) =>
        this.machineConfig(cfg, 'PUT'),
      ),
      'PATCH machine-config': route<Partial<MachineConfig>>('/machine-config', patch('machine_cfg'), (cfg) =>
        this.machineConfig(cfg, 'PATCH'),
      ),
      'PUT vsock': route<Vsock>('/vsock', put('vsock'), (cfg) => {
        const deprecation = cfg.vsock_id === undefined ? undefined : 'PUT /vsock: vsock_id field is deprecated.';
        return act('SetVsockDevice', () => this.setVsock(cfg), deprecation);
      }),
      'PUT logger': route<LoggerSettings>('/logger', put('logger'), (cfg) =>
        act('ConfigureLogger', () => this.configureLogger(cfg)),
      ),
      'PUT metrics': route<MetricsSettings>('/metrics', put('metrics'), (cfg) =>
        act('ConfigureMetrics', () => this.configureMetrics(cfg)),
      ),
      'PUT snapshot/create': route<SnapshotCreate>('/snapshot/create', undefined, (cfg) =>
        act('CreateSnapshot', () => this.createSnapshot(cfg)),
      ),
      'PUT snapshot/load': route<SnapshotLoad>('/snapshot/load', undefined, (cfg) => this.snapshotLoad(cfg)),
      'PATCH vm': route<{ state: string }>('/vm', undefined, ({ state }) =>
        state === 'Paused' ? act('Pause', () => this.pause()) : act('Resume', () => this.resume()),
      ),
    };
  }

  /** Reads the request, then queues it: Firecracker serves one request at a time. */
  serve(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = chunks.length > 0 ? Buffer.concat(chunks).toString('utf8') : undefined;
      this.queue = this.queue.then(() => this.answer(req.method ?? 'GET', req.url ?? '/', body, res));
    });
  }

  private async answer(method: string, url: string, body: string | undefined, res: ServerResponse): Promise<void> {
    const path = url.split('?')[0] ?? '/';
    const described = `${method[0]}${method.slice(1).toLowerCase()} request on ${JSON.stringify(path)}`;
    const withBody = body === undefined ? '' : ` with body ${JSON.stringify(body)}`;
    logger.log('INFO', API, 'fc_api', `The API server received a ${described}${withBody}.`);
    const outcome = await this.outcome(method, path, body);
    if (outcome.fault !== undefined) {
      logger.log('ERROR', API, 'fc_api', `Received Error. Status code: 400 Bad Request. Message: ${outcome.fault}`);
    } else {
      const status = outcome.status === 204 ? '204 No Content' : '200 OK';
      logger.log('INFO', API, 'fc_api', `The request was executed successfully. Status code: ${status}.`);
    }
    if (outcome.deprecation) {
      metrics.inc('deprecated_api', 'deprecated_http_api_calls');
      logger.log('WARN', API, 'fc_api', outcome.deprecation);
    }
    if (this.options.record) this.record(method, path, body, outcome);
    const payload =
      outcome.fault !== undefined ? JSON.stringify({ fault_message: outcome.fault }) : JSON.stringify(outcome.body);
    res.writeHead(outcome.status, {
      Server: 'Firecracker API',
      ...(payload === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...(outcome.deprecation ? { Deprecation: 'true' } : {}),
    });
    const finished = new Promise((resolve) => res.on('finish', resolve));
    res.end(payload);
    await finished;
    // A failed snapshot load leaves the process too dirty to go on (rpc_interface.rs fatal_error): answer, then exit.
    if (outcome.fatal) this.options.exit('RunWithApi(BuildMicroVmError(Restore))');
  }

  private record(method: string, path: string, body: string | undefined, outcome: Outcome): void {
    let parsed: unknown = null;
    try {
      if (body !== undefined) parsed = JSON.parse(body);
    } catch {
      parsed = body;
    }
    const fault = outcome.fault === undefined ? {} : { fault_message: outcome.fault };
    const entry = { method, path, body: parsed, status: outcome.status, ...fault };
    appendFileSync(this.options.record!, `${JSON.stringify(entry)}\n`);
  }

  private async outcome(method: string, path: string, body: string | undefined): Promise<Outcome> {
    let parsed: Parsed | undefined;
    this.violations = [];
    try {
      parsed = this.parse(method, path, body);
      const data = await this.gate(parsed);
      return { status: data === undefined ? 204 : 200, body: data, deprecation: parsed.deprecation };
    } catch (error) {
      if (!(error instanceof Fault)) throw error;
      return { status: 400, fault: error.message, deprecation: parsed?.deprecation, fatal: error.fatal };
    }
  }

  /**
   * Pre-boot vs runtime controller (rpc_interface.rs handle_preboot_request / RuntimeApiController), then what the
   * swagger forbids and Firecracker does not check, then the action itself.
   */
  private gate(parsed: Parsed): unknown {
    const booted = this.state !== 'Not started';
    if (booted && PRE_BOOT_ONLY.has(parsed.action)) throw new Fault(NOT_SUPPORTED_POST_BOOT);
    if (!booted && POST_BOOT_ONLY.has(parsed.action)) throw new Fault(NOT_SUPPORTED_PRE_BOOT);
    if (booted && (parsed.action === 'InsertBlockDevice' || parsed.action === 'InsertNetworkDevice')) {
      // After boot these are PCI hotplug (device_manager/mod.rs hotplug_device).
      if (!this.options.pciEnabled) throw new Fault('PCI is not enabled');
      throw notEmulated('PCI device hotplug');
    }
    if (this.violations.length > 0) throw new Fault(`${CONTRACT} ${this.violations.join('; ')}`);
    return parsed.run();
  }

  // --- Parsing (api_server/parsed_request.rs ParsedRequest::try_from and request/*.rs) --------------------------

  private parse(method: string, path: string, body: string | undefined): Parsed {
    const tokens = path.replace(/^\/+/, '').split('/');
    if (tokens.length > 1 && tokens.at(-1) === '') tokens.pop(); // split_terminator
    const [first = '', second] = tokens;
    if (!['GET', 'PUT', 'PATCH', 'DELETE'].includes(method)) throw new Fault('Unsupported HTTP method.');
    const invalidPath = new Fault(`Invalid request method and/or path: ${method} ${first}.`);
    if (method === 'GET') {
      if (body !== undefined) throw new Fault('GET request cannot have a body.');
      return this.parseGet(first, second) ?? this.refuse(method, first, invalidPath);
    }
    if (body === undefined) {
      if (method === 'PUT' || method === 'PATCH') throw new Fault(`Empty ${method} request.`);
      return this.refuse(method, first, invalidPath);
    }
    if (method === 'PUT' && first === 'snapshot') {
      if (second === undefined) throw new Fault('Missing snapshot operation type.');
      if (second !== 'create' && second !== 'load') {
        throw new Fault(`Invalid request method and/or path: PUT /snapshot/${second}.`);
      }
    }
    const route = this.routes[first === 'snapshot' ? `${method} snapshot/${second}` : `${method} ${first}`];
    if (!route) {
      if (method === 'DELETE') throw new Fault('Empty Delete request.');
      return this.refuse(method, first, invalidPath);
    }
    if (route.metric) metrics.inc(route.metric[0], `${route.metric[1]}_count`);
    try {
      return route.parse(this.decode(method, route, body, second));
    } catch (error) {
      if (route.metric && error instanceof Fault) metrics.inc(route.metric[0], `${route.metric[1]}_fails`);
      throw error;
    }
  }

  private parseGet(first: string, second: string | undefined): Parsed | undefined {
    const get = (name: string, action: string, run: () => unknown): Parsed => {
      metrics.inc('get_api_requests', `${name}_count`);
      return { action, run };
    };
    if (first === '') return get('instance_info', 'GetVmInstanceInfo', () => this.instanceInfo());
    if (first === 'version')
      return get('vmm_version', 'GetVmmVersion', () => ({ firecracker_version: this.options.version }));
    if (first === 'machine-config') return get('machine_cfg', 'GetVmMachineConfig', () => this.machineJson());
    if (first === 'vm' && second === 'config') return { action: 'GetFullVmConfig', run: () => this.fullConfig() };
    return undefined;
  }

  private refuse(method: string, first: string, invalidPath: Fault): never {
    const unplug = method === 'DELETE' && ['drives', 'pmem', 'network-interfaces'].includes(first);
    if (NOT_EMULATED_PATHS.includes(first) || unplug) throw notEmulated(`${method} /${first}`);
    throw invalidPath;
  }

  /** checked_id on the path's id, serde_json::from_slice, then "the id from the path" check (request/drive.rs, net.rs). */
  private decode(method: string, route: Route, body: string, id: string | undefined): Decoded {
    if (route.id) {
      if (id === undefined || id === '') throw new Fault('The ID cannot be empty.');
      if (!/^[\p{L}\p{N}_]+$/u.test(id)) {
        throw new Fault('API Resource IDs can only contain alphanumeric characters and underscores.');
      }
    }
    const operation = this.operations.get(`${method} ${route.template}`);
    if (!operation?.definition) throw new Error(`the contract has no body for ${method} ${route.template}`);
    let value: Decoded;
    try {
      value = decodeBody(this.options.swagger, operation, body);
    } catch (error) {
      if (error instanceof SerdeError) throw new Fault(`${SERDE} ${error.message}.`);
      throw error;
    }
    const bodyId = route.id && (value as Record<string, unknown>)[route.id];
    if (route.id && bodyId !== id) {
      throw new Fault(
        route.id === 'drive_id'
          ? 'The id from the path does not match the id from the body!'
          : `The id from the path [${id}] does not match the id from the body [${String(bodyId)}]!`,
      );
    }
    // Firecracker's own checks answer these (machine_config.rs InvalidVcpuCount, net/device.rs InvalidMtu).
    const own = ['MachineConfiguration.vcpu_count ', 'NetworkInterface.mtu '];
    const violations = contractViolations(this.options.swagger, operation.definition, value);
    this.violations.push(...violations.filter((v) => !own.some((o) => v.startsWith(o))));
    return value;
  }

  private machineConfig(cfg: Partial<MachineConfig>, method: 'PUT' | 'PATCH'): Parsed {
    if (method === 'PATCH' && Object.keys(cfg).length === 0) throw new Fault('Empty PATCH request.');
    return {
      action: 'UpdateMachineConfiguration',
      run: () => this.updateMachine(cfg, method === 'PUT'),
      deprecation:
        cfg.cpu_template === undefined ? undefined : `${method} /machine-config: cpu_template field is deprecated.`,
    };
  }

  /** request/snapshot.rs: exactly one of the two memory fields, as serde custom errors (no position). */
  private snapshotLoad(cfg: SnapshotLoad): Parsed {
    if (cfg.mem_backend && cfg.mem_file_path !== undefined) {
      throw new Fault(`${SERDE} too many fields: either \`mem_backend\` or \`mem_file_path\` exclusively is required.`);
    }
    if (!cfg.mem_backend && cfg.mem_file_path === undefined) {
      throw new Fault(`${SERDE} missing field: either \`mem_backend\` or \`mem_file_path\` is required.`);
    }
    const deprecated = cfg.mem_file_path !== undefined || cfg.enable_diff_snapshots === true;
    return {
      action: 'LoadSnapshot',
      run: () => this.loadSnapshot(cfg),
      deprecation: deprecated
        ? 'PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated.'
        : undefined,
    };
  }

  // --- Actions ---------------------------------------------------------------------------------------------------

  private instanceInfo(): object {
    return { id: logger.id, state: this.state, vmm_version: this.options.version, app_name: 'Firecracker' };
  }

  /** MachineConfig's serialization: cpu_template only when it is a static template other than None. */
  private machineJson(): MachineConfig {
    const { vcpu_count, mem_size_mib, smt, cpu_template, track_dirty_pages, huge_pages } = this.machine;
    const template = cpu_template && cpu_template !== 'None' ? { cpu_template } : {};
    return { vcpu_count, mem_size_mib, smt, ...template, track_dirty_pages, huge_pages };
  }

  /** VmmConfig from VmResources (resources.rs): logger and metrics are always null there. */
  private fullConfig(): Record<string, unknown> {
    const none = { initrd_path: null, boot_args: null };
    return {
      balloon: null,
      drives: this.drives.map((d) => ({
        drive_id: d.drive_id,
        partuuid: d.partuuid ?? null,
        is_root_device: d.is_root_device,
        cache_type: d.cache_type,
        is_read_only: d.is_read_only,
        path_on_host: d.path_on_host,
        rate_limiter: d.rate_limiter ?? null,
        io_engine: d.io_engine,
        socket: null,
      })),
      'boot-source': { kernel_image_path: '', ...none, ...this.bootSource },
      'cpu-config': null,
      logger: null,
      'machine-config': this.machineJson(),
      metrics: null,
      'mmds-config': null,
      'network-interfaces': this.nets.map((n) => ({
        iface_id: n.iface_id,
        host_dev_name: n.host_dev_name,
        guest_mac: n.guest_mac ?? null,
        ...(n.mtu === undefined ? {} : { mtu: n.mtu }),
        rx_rate_limiter: n.rx_rate_limiter ?? null,
        tx_rate_limiter: n.tx_rate_limiter ?? null,
      })),
      vsock: this.vsock ? { guest_cid: this.vsockCid, uds_path: this.vsock.udsPath } : null,
      entropy: null,
      pmem: [],
      'memory-hotplug': null,
    };
  }

  /** BootConfig::new (vmm_config/boot_source.rs): kernel and initrd are opened now; the cmdline must fit 2048 bytes. */
  private setBootSource(cfg: BootSource): void {
    this.bootPath = true;
    closeSync(
      tryOpen(cfg.kernel_image_path, 'r', (io) => `Boot source error: The kernel file cannot be opened: ${io}`),
    );
    if (cfg.initrd_path) {
      const initrd = 'Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions.';
      closeSync(tryOpen(cfg.initrd_path, 'r', (io) => `${initrd} ${io}`));
    }
    if (cfg.boot_args && Buffer.byteLength(cfg.boot_args) >= 2048) {
      throw new Fault('Boot source error: The kernel command line is invalid: Command line overflowed capacity');
    }
    this.bootSource = cfg;
  }

  /** MachineConfig::update (vmm_config/machine_config.rs). PUT resets what it leaves out, except cpu_template. */
  private updateMachine(cfg: Partial<MachineConfig>, put: boolean): void {
    this.bootPath = true;
    const base = put ? { ...this.machine, smt: false, track_dirty_pages: false, huge_pages: 'None' } : this.machine;
    const next: MachineConfig = { ...base, ...cfg };
    const { vcpu_count: vcpus, smt, mem_size_mib: mib } = next;
    if (vcpus === 0 || vcpus > 32 || (smt && vcpus > 1 && vcpus % 2 === 1)) {
      throw new Fault(
        'Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.',
      );
    }
    if (mib === 0 || (next.huge_pages !== 'None' && mib % 2 !== 0)) {
      throw new Fault(
        'Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.',
      );
    }
    this.machine = next;
  }

  /** BlockBuilder::insert + VirtioBlock::new (vmm_config/drive.rs, devices/virtio/block/virtio/device.rs). */
  private insertDrive(cfg: Drive): void {
    this.bootPath = true;
    const position = this.drives.findIndex((d) => d.drive_id === cfg.drive_id);
    if (cfg.is_root_device && this.drives[0]?.is_root_device && position !== 0) {
      throw new Fault('Drive config error: A root block device already exists!');
    }
    if (cfg.path_on_host === undefined || cfg.socket !== undefined) {
      if (cfg.path_on_host === undefined && cfg.socket !== undefined) throw notEmulated('vhost-user-block');
      throw new Fault('Drive config error: Unable to create the virtio block device: Invalid block config.');
    }
    const error = 'Drive config error: Unable to create the virtio block device: Virtio backend error:';
    closeSync(openDrive(cfg, (io) => `${error} ${io}`));
    const drive = {
      ...cfg,
      cache_type: cfg.cache_type ?? 'Unsafe',
      is_read_only: cfg.is_read_only ?? false,
      io_engine: cfg.io_engine ?? 'Sync',
    };
    if (position >= 0) this.drives.splice(position, 1);
    if (drive.is_root_device) this.drives.unshift(drive);
    else this.drives.push(drive);
  }

  /** rpc_interface.rs update_block_device: a new path is opened; neither field means a vhost-user update. */
  private updateDrive(cfg: Drive): void {
    const error = 'Drive config error: Unable to patch the block device:';
    const drive = this.drives.find((d) => d.drive_id === cfg.drive_id);
    if (!drive || (cfg.path_on_host === undefined && cfg.rate_limiter === undefined)) {
      throw new Fault(
        `${error} Failed perform action on device: Device not found Please verify the request arguments.`,
      );
    }
    if (cfg.path_on_host !== undefined) {
      const next = { ...drive, path_on_host: cfg.path_on_host };
      closeSync(
        openDrive(next, (io) => `${error} Block: Virtio backend error: ${io} Please verify the request arguments.`),
      );
      drive.path_on_host = cfg.path_on_host;
    }
    if (cfg.rate_limiter) drive.rate_limiter = cfg.rate_limiter;
  }

  /** NetBuilder::build + Net::new (vmm_config/net.rs, devices/virtio/net/device.rs). */
  private insertNet(cfg: NetworkInterface): void {
    this.bootPath = true;
    const mac = cfg.guest_mac?.toLowerCase();
    if (mac && this.nets.some((n) => n.guest_mac?.toLowerCase() === mac && n.iface_id !== cfg.iface_id)) {
      throw new Fault(`Network config error: The MAC address is already in use: ${mac}`);
    }
    const error = 'Network config error: Could not create the network device:';
    openTap(cfg.host_dev_name, (tap) => `${error} Open tap device failed: ${tap}`);
    if (cfg.mtu !== undefined && cfg.mtu < 68) throw new Fault(`${error} MTU ${cfg.mtu} is out of range [68, 65535]`);
    this.nets = [...this.nets.filter((n) => n.iface_id !== cfg.iface_id), cfg];
  }

  private updateNet(id: string): void {
    if (!this.nets.some((n) => n.iface_id === id)) {
      throw new Fault(
        'Network config error: Unable to update the net device: Failed perform action on device: Device not found',
      );
    }
  }

  /** VsockBuilder::insert (vmm_config/vsock.rs): the old socket file is removed, the new path bound right away. */
  private async setVsock(cfg: Vsock): Promise<void> {
    this.bootPath = true;
    const error =
      'Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket:';
    const old = this.vsock;
    this.vsock = undefined;
    try {
      if (old) unlinkSync(hostPath(old.udsPath));
    } catch (cause) {
      throw new Fault(`${error} ${rustIoError(cause)}`);
    } finally {
      old?.close(); // before binding: Node's close() unlinks the path, which may be the new one's
    }
    try {
      this.vsock = await VsockMuxer.bind(cfg.uds_path, hostPath(cfg.uds_path));
    } catch (cause) {
      throw new Fault(`${error} ${rustIoError(cause)}`);
    }
    this.vsockCid = cfg.guest_cid;
  }

  private configureLogger(cfg: LoggerSettings): void {
    try {
      logger.update(cfg);
    } catch (error) {
      throw new Fault(`Logger error: Failed to open target file: ${rustIoError(error)}`);
    }
  }

  private configureMetrics(cfg: MetricsSettings): void {
    try {
      metrics.init(cfg);
    } catch (error) {
      throw new Fault(
        `Metrics error: Cannot initialize the metrics system due to bad user input: ${rustIoError(error)}`,
      );
    }
  }

  /** build_and_boot_microvm (builder.rs): it needs a kernel; the root drive's arguments join the command line. */
  private async start(): Promise<void> {
    if (!this.bootSource) throw new Fault('Start microvm error: Cannot start microvm without kernel configuration.');
    const root = this.drives[0]?.is_root_device ? this.drives[0] : undefined;
    const device = root?.partuuid ? `root=PARTUUID=${root.partuuid}` : 'root=/dev/vda';
    const rootArgs = root ? [device, root.is_read_only ? 'ro' : 'rw'] : [];
    this.booted = this.bootSource;
    await this.boot([this.bootSource.boot_args ?? DEFAULT_KERNEL_CMDLINE, ...rootArgs].join(' '), false);
    this.state = 'Running';
    this.vsock?.activate(this.guest!);
  }

  private async boot(cmdline: string, restored: boolean): Promise<void> {
    const args = cmdline.split(/\s+/);
    // The kernel has a serial console only with console=ttyS0 and the 8250 driver (the default cmdline disables it).
    const hasConsole = args.some((a) => /^console=ttyS0(,|$)/.test(a)) && !args.includes('8250.nr_uarts=0');
    this.guest = new FakeGuest({
      agent: this.options.agent,
      agentSocket: this.options.agentSocket,
      console: hasConsole ? (text) => process.stdout.write(text) : undefined,
      quiet: args.includes('quiet'),
      ignoreCtrlAltDel: this.options.ignoreCtrlAltDel,
      // A guest reset ends the VMM with FcExitCode::Ok (lib.rs Vmm::process), after the answer in flight went out.
      onReboot: () =>
        void this.queue.then(() => {
          logger.log('INFO', VMM, 'main', 'Vmm is stopping.');
          this.options.exit();
        }),
    });
    await this.guest.start(cmdline, restored);
    setInterval(() => this.state === 'Running' && metrics.write(), 60_000).unref(); // WRITE_METRICS_PERIOD_MS
  }

  private pause(): void {
    this.vsock?.deactivate();
    this.guest?.pause();
    this.state = 'Paused';
  }

  private resume(): void {
    this.guest?.resume();
    this.state = 'Running';
    this.vsock?.activate(this.guest!);
  }

  /** persist.rs create_snapshot: vCPUs paused; the state file first, then the memory file (opened, set_len). */
  private createSnapshot(cfg: SnapshotCreate): void {
    if (this.state !== 'Paused') {
      throw new Fault(
        'Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running',
      );
    }
    if (cfg.snapshot_type === 'Diff') throw notEmulated('a Diff snapshot');
    try {
      writeSnapshotFile(hostPath(cfg.snapshot_path), { ...this.fullConfig(), 'boot-source': this.booted });
    } catch (error) {
      throw new Fault(`Create snapshot error: Cannot perform open on the snapshot backing file: ${rustIoError(error)}`);
    }
    const memory = hostPath(cfg.mem_file_path);
    const fd = tryOpen(cfg.mem_file_path, existsSync(memory) ? 'r+' : 'w', (io) => {
      return `Create snapshot error: Cannot perform open on the memory backing file: ${io}`;
    });
    ftruncateSync(fd, this.machine.mem_size_mib * 1024 * 1024); // sparse: the size is real, the disk use is not
    closeSync(fd);
    this.vsock?.transportReset();
  }

  /** PrebootApiController::load_snapshot + persist.rs restore_from_snapshot. After boot_path it is refused; any
   * later failure is fatal. */
  private async loadSnapshot(cfg: SnapshotLoad): Promise<void> {
    if (this.bootPath) {
      throw new Fault(
        'Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.',
      );
    }
    const restoreError = (reason: string): string => `Load snapshot error: Failed to restore from snapshot: ${reason}`;
    const fail = (reason: string): Fault => new Fault(restoreError(reason), true);
    const fromFile = 'Failed to get snapshot state from file:';
    let data: SnapshotData;
    try {
      data = readSnapshotFile(hostPath(cfg.snapshot_path)).data as SnapshotData; // CRC-checked: what we wrote
    } catch (error) {
      if (error instanceof SnapshotFileError)
        throw fail(`${fromFile} Failed to load snapshot state from file: ${error.message}`);
      throw fail(`${fromFile} Failed to open snapshot file: ${rustIoError(error)}`);
    }
    const nets = data['network-interfaces'].map((n) => ({ ...n }));
    for (const entry of cfg.network_overrides ?? []) {
      const net = nets.find((n) => n.iface_id === entry.iface_id);
      if (!net) throw fail(`${fromFile} Unknown Network Device.`);
      net.host_dev_name = entry.host_dev_name;
    }
    if (cfg.vsock_override && !data.vsock) throw fail(`${fromFile} Unknown Vsock Device.`);
    const vsock = data.vsock && { ...data.vsock, uds_path: cfg.vsock_override?.uds_path ?? data.vsock.uds_path };
    const snapshotPages = data['machine-config'].huge_pages;
    const hugePages = cfg.huge_pages && cfg.huge_pages !== 'Snapshot' ? cfg.huge_pages : snapshotPages;
    this.machine = {
      ...data['machine-config'],
      track_dirty_pages: cfg.track_dirty_pages ?? false,
      huge_pages: hugePages,
    };
    const backend = cfg.mem_backend ?? { backend_type: 'File', backend_path: cfg.mem_file_path! };
    if (backend.backend_type === 'Uffd') throw notEmulated('the Uffd memory backend');
    const memory = 'Failed to load guest memory: Error creating guest memory from file:';
    if (hugePages === '2M') {
      throw fail(`${memory} Cannot restore hugetlbfs backed snapshot by mapping the memory file. Please use uffd.`);
    }
    closeSync(
      tryOpen(backend.backend_path, 'r', (io) => restoreError(`${memory} Failed to load guest memory: ${io}`), true),
    );
    const devices = 'Failed to build microVM from snapshot: Failed to restore devices: Error restoring MMIO devices:';
    for (const drive of data.drives) {
      closeSync(openDrive(drive, (io) => restoreError(`${devices} Block: Virtio backend error: ${io}`), true));
    }
    for (const net of nets) {
      const error = `${devices} Net: Failed to create a network device: Open tap device failed:`;
      openTap(net.host_dev_name, (tap) => restoreError(`${error} ${tap}`), true);
    }
    if (vsock) {
      try {
        this.vsock = await VsockMuxer.bind(vsock.uds_path, hostPath(vsock.uds_path));
      } catch (error) {
        throw fail(`${devices} VsockUnixBackend: Error binding to the host-side Unix socket: ${rustIoError(error)}`);
      }
      this.vsockCid = vsock.guest_cid;
    }
    this.drives = data.drives;
    this.nets = nets;
    this.booted = data['boot-source'];
    await this.boot(this.booted.boot_args ?? DEFAULT_KERNEL_CMDLINE, true);
    this.state = 'Paused';
    this.guest!.pause();
    if (cfg.resume_vm) this.resume();
  }

  /** The process ends: the guest goes with it. The API and vsock socket files stay, as Firecracker leaves them. */
  shutdown(): void {
    this.guest?.stop();
  }
}

/** Opens a file as Firecracker does at request time; a failure becomes `message(<io error>)`. */
function tryOpen(path: string, flags: string, message: (io: string) => string, fatal = false): number {
  try {
    return openSync(hostPath(path), flags);
  } catch (error) {
    throw new Fault(message(rustIoError(error)), fatal);
  }
}

/** DiskProperties::open_file: read-write unless read-only; BackingFile's Display is "<io> <path>". */
function openDrive(drive: Drive, message: (error: string) => string, fatal = false): number {
  const path = drive.path_on_host!;
  const flags = drive.is_read_only ? 'r' : 'r+';
  return tryOpen(path, flags, (io) => message(`Error manipulating the backing file: ${io} ${path}`), fatal);
}

/**
 * Tap::open_named (devices/virtio/net/tap.rs). No TAP is opened here; TUNSETIFF's answer is judged from sysfs: the
 * name must fit IFNAMSIZ, and an existing interface must be a TAP (tun_flags has IFF_TAP) owned by us. A missing one
 * is created only by root (the host's /sys/class/net: the TAP is found by name, not through the jail).
 */
function openTap(name: string, message: (error: string) => string, fatal = false): void {
  if (Buffer.byteLength(name) > 15) throw new Fault(message('Invalid interface name'), fatal);
  const sys = `/sys/class/net/${name}`;
  const read = (file: string): number =>
    existsSync(`${sys}/${file}`) ? Number(readFileSync(`${sys}/${file}`, 'utf8')) : -1;
  const root = process.getuid?.() === 0;
  let errno: string | undefined;
  if (!existsSync(sys)) errno = root ? undefined : 'Operation not permitted (os error 1)';
  else if ((Math.max(read('tun_flags'), 0) & 0x0002) === 0) errno = 'Invalid argument (os error 22)';
  else {
    const [owner, group] = [read('owner'), read('group')];
    const theirs =
      (owner !== -1 && owner !== process.getuid?.()) || (group !== -1 && !process.getgroups?.().includes(group));
    if (theirs && !root) errno = 'Operation not permitted (os error 1)';
  }
  if (errno) {
    const advice = `Invalid TUN/TAP Backend provided by ${name}. Check our documentation on setting up the network devices.`;
    throw new Fault(message(`Error while creating ifreq structure: ${errno}. ${advice}`), fatal);
  }
}
