/**
 * The fake Firecracker's logger and metrics. Log lines: "<local time> [<id>:<thread><:LEVEL><:file:line>] <msg>",
 * on stdout until PUT /logger names a file (src/vmm/src/logger/logging.rs). Metrics: one JSON line per flush, each
 * counter reporting what happened since the previous line (src/vmm/src/logger/metrics.rs, SharedIncMetric).
 */
import { writeSync } from 'node:fs';
import { openLogFile } from './host.js';

const LEVELS = ['OFF', 'ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE'] as const;
export type Level = Exclude<(typeof LEVELS)[number], 'OFF'>;
const DEFAULT_LEVEL = 3;

/** LevelFilter's Deserialize: any case, and "warning" for Warn; -1 when unknown. */
export function levelIndex(name: string): number {
  const upper = name.toUpperCase();
  return upper === 'WARNING' ? 2 : LEVELS.indexOf(upper as (typeof LEVELS)[number]);
}

/** Where a message comes from: `module` is what PUT /logger's `module` filters on, `file` shows with show_log_origin. */
export interface Site {
  readonly module: string;
  readonly file: string;
}
export const MAIN: Site = { module: 'firecracker', file: 'src/firecracker/src/main.rs' };
export const API: Site = {
  module: 'firecracker::api_server::parsed_request',
  file: 'src/firecracker/src/api_server/parsed_request.rs',
};
export const VMM: Site = { module: 'vmm::rpc_interface', file: 'src/vmm/src/rpc_interface.rs' };

export interface LoggerSettings {
  readonly log_path?: string | undefined;
  readonly level?: string | undefined;
  readonly show_level?: boolean | undefined;
  readonly show_log_origin?: boolean | undefined;
  readonly module?: string | undefined;
}

class Logger {
  id = 'anonymous-instance';
  private fd: number | undefined;
  private max = DEFAULT_LEVEL;
  private showLevel = false;
  private showOrigin = false;
  private module: string | undefined;

  log(level: Level, site: Site, thread: string, message: string): void {
    if (LEVELS.indexOf(level) > this.max || (this.module && !site.module.startsWith(this.module))) return;
    const tags = `${this.id}:${thread}${this.showLevel ? `:${level}` : ''}${this.showOrigin ? `:${site.file}:?` : ''}`;
    const line = `${localTime()} [${tags}] ${message}\n`;
    if (this.fd === undefined) process.stdout.write(line);
    else writeSync(this.fd, line);
  }

  /** LOGGER.update: the file is opened first; unset fields keep their value, except the level (back to Info). */
  update(settings: LoggerSettings): void {
    if (settings.log_path !== undefined) this.fd = openLogFile(settings.log_path);
    this.max = settings.level === undefined ? DEFAULT_LEVEL : levelIndex(settings.level);
    this.showLevel = settings.show_level ?? this.showLevel;
    this.showOrigin = settings.show_log_origin ?? this.showOrigin;
    this.module = settings.module ?? this.module;
  }
}

/** utils/src/time.rs LocalTime: "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn". */
function localTime(): string {
  const d = new Date();
  const p = (n: number): string => String(n).padStart(2, '0');
  const date = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${date}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}000000`;
}

export const logger = new Logger();

const pair = (names: readonly string[]): string[] => names.flatMap((n) => [`${n}_count`, `${n}_fails`]);

/** The counter groups the fake keeps, in FirecrackerMetrics' field order. */
const COUNTERS = {
  deprecated_api: ['deprecated_http_api_calls'],
  get_api_requests: [
    'instance_info_count',
    'machine_cfg_count',
    'mmds_count',
    'vmm_version_count',
    'hotplug_memory_count',
  ],
  logger: ['missed_metrics_count', 'metrics_fails', 'missed_log_count', 'rate_limited_log_count'],
  patch_api_requests: pair(['drive', 'network', 'machine_cfg', 'mmds', 'hotplug_memory', 'pmem']),
  put_api_requests: pair([
    ...['actions', 'boot_source', 'drive', 'logger', 'machine_cfg', 'cpu_cfg', 'metrics', 'network', 'mmds'],
    ...['vsock', 'pmem', 'serial', 'hotplug_memory'],
  ]),
  vmm: ['panic_count'],
  signals: ['sigbus', 'sigsegv', 'sigxfsz', 'sigxcpu', 'sigpipe', 'sighup', 'sigill'],
} as const;
export type MetricGroup = keyof typeof COUNTERS;

export interface MetricsSettings {
  readonly metrics_path: string;
  readonly emit_id?: boolean | undefined;
  readonly properties?: Record<string, string> | undefined;
}

class Metrics {
  private fd: number | undefined;
  private emitId = false;
  private properties: Record<string, string> | undefined;
  private readonly counts = new Map<string, number>();
  /** --start-time-us / --start-time-cpu-us (ProcessTimeReporter). */
  startUs = 0;
  startCpuUs = 0;

  inc(group: MetricGroup, counter: string): void {
    const key = `${group}.${counter}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** init_metrics (vmm_config/metrics.rs); Node's error when the file cannot be opened. */
  init(settings: MetricsSettings): void {
    if (this.fd !== undefined) throw new Error('Reinitialization of metrics not allowed.');
    this.fd = openLogFile(settings.metrics_path);
    this.emitId = settings.emit_id ?? false;
    this.properties = settings.properties;
  }

  /** METRICS.write(): nothing at all when never initialized. */
  write(): void {
    if (this.fd === undefined) return;
    const line: Record<string, unknown> = { utc_timestamp_ms: Date.now() };
    if (this.emitId) line.id = logger.id;
    if (this.properties) line.properties = this.properties;
    line.api_server = { process_startup_time_us: this.startUs, process_startup_time_cpu_us: this.startCpuUs };
    for (const [group, names] of Object.entries(COUNTERS)) {
      line[group] = Object.fromEntries(names.map((n) => [n, this.counts.get(`${group}.${n}`) ?? 0]));
    }
    this.counts.clear();
    writeSync(this.fd, `${JSON.stringify(line)}\n`);
  }
}

export const metrics = new Metrics();
