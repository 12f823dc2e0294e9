/**
 * A stand-in for the `firecracker` binary on hosts without KVM: `node fake-firecracker.js <firecracker args>`.
 * The command line, start-up and exit behave as src/firecracker/src/main.rs and src/utils/src/arg_parser.rs at
 * firecracker@81b38b9dad6056d7a48073e95ac5a9aed51cb2ab; the API and the VMM are vmm.ts.
 *
 * Environment: FAKE_FIRECRACKER_VERSION (default: the vendored swagger's version), FAKE_FIRECRACKER_AGENT (the
 * jitvm agent built for this host: the guest), FAKE_FIRECRACKER_IGNORE_CTRL_ALT_DEL=1, FAKE_FIRECRACKER_RECORD (a
 * file that gets one JSON line per request), FAKE_FIRECRACKER_CHROOT (set by the fake jailer, see host.ts).
 */
import { readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSwagger } from './contract.js';
import { hostPath, rustIoError } from './host.js';
import { API, MAIN, levelIndex, logger, metrics } from './logging.js';
import { SNAPSHOT_VERSION, SnapshotFileError, readSnapshotFile } from './snapshot-file.js';
import { FakeVmm } from './vmm.js';

const swagger = loadSwagger();
const VERSION = process.env.FAKE_FIRECRACKER_VERSION ?? swagger.info.version;

/** main(): the error is logged, printed as "Error: <Debug>", and its FcExitCode is the exit code. */
function exitWithError(debug: string, display: string, code: number): never {
  logger.log('ERROR', MAIN, 'main', display);
  process.stderr.write(`Error: ${debug}\n`);
  logger.log('ERROR', MAIN, 'main', `Firecracker exiting with error. exit_code=${code}`);
  process.exit(code);
}

/** An `.expect()` that fails: Rust's panic message, then abort (Firecracker builds with panic = "abort"). */
function panic(message: string): never {
  process.stderr.write(`thread 'main' panicked at src/firecracker/src/main.rs:\n${message}\n`);
  process.kill(process.pid, 'SIGABRT'); // delivered before kill() returns
  process.exit(134);
}

interface ArgSpec {
  readonly value?: true;
  readonly fallback?: string;
  readonly forbids?: string;
  readonly requires?: string;
  readonly help: string;
}

/** Firecracker's arguments, in the name order the parser's BTreeMap keeps (and --help prints). */
const ARGS: Readonly<Record<string, ArgSpec>> = {
  'api-sock': { value: true, fallback: '/run/firecracker.socket', help: 'Path to unix domain socket used by the API.' },
  'boot-timer': {
    help: 'Whether or not to load boot timer device for logging elapsed time since InstanceStart command.',
  },
  'config-file': { value: true, help: 'Path to a file that contains the microVM configuration in JSON format.' },
  'describe-snapshot': { value: true, help: 'Print the data format version of the provided snapshot state file.' },
  'enable-pci': { help: 'Enables PCIe support.' },
  'http-api-max-payload-size': { value: true, fallback: '51200', help: 'Http API request payload max size, in bytes.' },
  id: { value: true, fallback: 'anonymous-instance', help: 'MicroVM unique identifier.' },
  level: { value: true, help: 'Set the logger level.' },
  'log-path': { value: true, help: 'Path to a fifo or a file used for configuring the logger on startup.' },
  metadata: { value: true, help: 'Path to a file that contains metadata in JSON format to add to the mmds.' },
  'metrics-path': { value: true, help: 'Path to a fifo or a file used for configuring the metrics on startup.' },
  'mmds-size-limit': { value: true, help: 'Mmds data store limit, in bytes.' },
  module: { value: true, help: 'Set the logger module filter.' },
  'no-api': {
    requires: 'config-file',
    help: 'Optional parameter which allows starting and using a microVM without an active API socket.',
  },
  'no-seccomp': {
    forbids: 'seccomp-filter',
    help: 'Optional parameter which allows starting and using a microVM without seccomp filtering. Not recommended.',
  },
  'parent-cpu-time-us': {
    value: true,
    help: 'Parent process CPU time (wall clock, microseconds). This parameter is optional.',
  },
  'seccomp-filter': {
    value: true,
    forbids: 'no-seccomp',
    help: 'Optional parameter which allows specifying the path to a custom seccomp filter. For advanced users.',
  },
  'show-level': { help: 'Whether or not to output the level in the logs.' },
  'show-log-origin': { help: "Whether or not to include the file path and line number of the log's origin." },
  'snapshot-version': { help: 'Print the supported data format version.' },
  'start-time-cpu-us': {
    value: true,
    help: 'Process start CPU time (wall clock, microseconds). This parameter is optional.',
  },
  'start-time-us': { value: true, help: 'Process start time (wall clock, microseconds). This parameter is optional.' },
  version: { help: 'Print the binary version number.' },
};

/** A UtilsArgParserError: its Debug (for "Error: …") and its Display (the message). */
class ArgError extends Error {
  constructor(
    readonly debug: string,
    display: string,
  ) {
    super(display);
  }
}

/** Arguments::parse: `--help`/`-h` and `--version` anywhere win; what follows `--` Firecracker ignores. */
function parseArgs(argv: readonly string[]): Map<string, string | true> {
  const end = argv.indexOf('--');
  const args = end >= 0 ? argv.slice(0, end) : argv;
  if (args.includes('--help') || args.includes('-h')) return new Map([['help', true]]);
  if (args.includes('--version')) return new Map([['version', true]]);
  const given = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = arg.startsWith('--') ? arg.slice(2) : arg;
    const spec = arg.startsWith('--') ? ARGS[name] : undefined;
    const q = JSON.stringify(name);
    if (!spec) {
      throw new ArgError(
        `UnexpectedArgument(${q})`,
        `Found argument '${name}' which wasn't expected, or isn't valid in this context.`,
      );
    }
    if (given.has(name))
      throw new ArgError(`DuplicateArgument(${q})`, `The argument '${name}' was provided more than once.`);
    const value = spec.value ? args[++i] : true;
    if (value === undefined || (typeof value === 'string' && value.startsWith('--'))) {
      throw new ArgError(`MissingValue(${q})`, `The argument '${name}' requires a value, but none was supplied.`);
    }
    given.set(name, value);
  }
  for (const [name, spec] of Object.entries(ARGS)) {
    if (!given.has(name)) continue;
    if (spec.requires && !args.includes(`--${spec.requires}`)) {
      const q = JSON.stringify(spec.requires);
      throw new ArgError(`MissingArgument(${q})`, `Argument '${spec.requires}' required, but not found.`);
    }
    if (spec.forbids && args.includes(`--${spec.forbids}`)) {
      const debug = `ForbiddenArgument(${JSON.stringify(name)}, ${JSON.stringify(spec.forbids)})`;
      throw new ArgError(debug, `Argument '${spec.forbids}' cannot be used together with argument '${name}'.`);
    }
  }
  return given;
}

/** ArgParser::formatted_help. */
function formattedHelp(): string {
  const names = Object.entries(ARGS).map(
    ([name, spec]) => [spec.value ? `  --${name} <${name}>` : `  --${name}`, spec] as const,
  );
  const width = Math.max(...names.map(([n]) => n.length));
  const line = ([n, spec]: (typeof names)[number]): string =>
    `${n.padEnd(width)}   ${spec.help}${spec.fallback ? ` [default: "${spec.fallback}"]` : ''}`;
  return ['optional arguments:', ...names.map(line)].join('\n');
}

/** validate_instance_id (src/utils/src/validators.rs): its error's Debug, or undefined when valid. */
function instanceIdProblem(id: string): string | undefined {
  const length = Buffer.byteLength(id);
  if (length < 1 || length > 64) return `InvalidLen(${length}, 1, 64)`;
  const chars = [...id];
  const bad = chars.findIndex((c) => c !== '-' && !/[\p{L}\p{N}]/u.test(c));
  return bad >= 0 ? `InvalidChar('${chars[bad]}', ${bad})` : undefined;
}

/** The agent sockets of fake processes that were killed before they could remove them. */
function sweepStaleAgentSockets(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = /^jitvm-fake-firecracker-(\d+)\.sock$/.exec(name)?.[1];
    if (!pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch {
      rmSync(join(tmpdir(), name), { force: true });
    }
  }
}

/** --version etc.: prints and returns true when the process has nothing more to do. */
function printOnly(args: Map<string, string | true>): boolean {
  if (args.has('help')) process.stdout.write(`Firecracker v${VERSION}\n\n${formattedHelp()}\n`);
  else if (args.has('version')) process.stdout.write(`Firecracker v${VERSION}\n\n`);
  else if (args.has('snapshot-version')) process.stdout.write(`v${SNAPSHOT_VERSION}\n`);
  else {
    const file = args.get('describe-snapshot');
    if (typeof file !== 'string') return false;
    try {
      process.stdout.write(`v${readSnapshotFile(file).version}\n`);
    } catch (error) {
      const reason =
        error instanceof SnapshotFileError
          ? `Invalid data format version of snapshot file: ${error.message}`
          : `Unable to open snapshot state file: ${rustIoError(error)}`;
      exitWithError('PrintSnapshotDataFormat(..)', `When printing Snapshot Data format: ${reason}`, 1);
    }
  }
  return true;
}

/** The logger and metrics of the command line, the ids and start times the jailer passes. */
function configure(args: Map<string, string | true>, value: (name: string) => string | undefined): void {
  const problem = instanceIdProblem(value('id')!);
  if (problem) panic(`Invalid instance ID: ${problem}`);
  logger.id = value('id')!;
  const level = value('level');
  if (level !== undefined && levelIndex(level) < 0) {
    const display = `Invalid value for logger level: ${level}.Possible values: [Error, Warning, Info, Debug]`;
    exitWithError(`InvalidLogLevel(${JSON.stringify(level)})`, display, 152);
  }
  try {
    logger.update({
      log_path: value('log-path'),
      level,
      show_level: args.has('show-level') || undefined,
      show_log_origin: args.has('show-log-origin') || undefined,
      module: value('module'),
    });
  } catch (error) {
    exitWithError(
      'LoggerInitialization(..)',
      `Could not initialize logger: Failed to open target file: ${rustIoError(error)}`,
      1,
    );
  }
  logger.log('INFO', MAIN, 'main', `Running Firecracker v${VERSION}`);
  const metricsPath = value('metrics-path');
  try {
    if (metricsPath !== undefined) metrics.init({ metrics_path: metricsPath });
  } catch (error) {
    const display = `Could not initialize metrics: Cannot initialize the metrics system due to bad user input: ${rustIoError(error)}`;
    exitWithError('MetricsInitialization(..)', display, 1);
  }
  for (const name of [
    'start-time-us',
    'start-time-cpu-us',
    'parent-cpu-time-us',
    'http-api-max-payload-size',
    'mmds-size-limit',
  ]) {
    const v = value(name);
    const type = name.endsWith('-us') ? 'u64' : 'usize';
    if (v !== undefined && !/^\+?[0-9]+$/.test(v)) {
      panic(`'${name}' parameter expected to be of '${type}' type.: ParseIntError { kind: InvalidDigit }`);
    }
  }
  metrics.startUs = Number(value('start-time-us') ?? 0);
  metrics.startCpuUs = Number(value('start-time-cpu-us') ?? 0);
}

function main(argv: readonly string[]): void {
  let args: Map<string, string | true>;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof ArgError)) throw error;
    exitWithError(
      `ParseArguments(${error.debug})`,
      `Arguments parsing error: ${error.message} \n\nFor more information try --help.`,
      153,
    );
  }
  if (printOnly(args)) return;
  const value = (name: string): string | undefined => {
    const v = args.get(name) ?? ARGS[name]?.fallback;
    return typeof v === 'string' ? v : undefined;
  };
  for (const unsupported of ['config-file', 'no-api', 'metadata', 'seccomp-filter']) {
    if (!args.has(unsupported)) continue;
    process.stderr.write(`fake firecracker: --${unsupported} is not emulated\n`);
    process.exit(1);
  }
  configure(args, value);

  sweepStaleAgentSockets();
  const vmm = new FakeVmm({
    version: VERSION,
    swagger,
    agent: process.env.FAKE_FIRECRACKER_AGENT || undefined,
    agentSocket: join(tmpdir(), `jitvm-fake-firecracker-${process.pid}.sock`),
    ignoreCtrlAltDel: process.env.FAKE_FIRECRACKER_IGNORE_CTRL_ALT_DEL === '1',
    record: process.env.FAKE_FIRECRACKER_RECORD || undefined,
    pciEnabled: args.has('enable-pci'),
    exit: (fatal) => {
      vmm.shutdown();
      if (fatal) exitWithError(fatal, 'RunWithApiError error: Failed to build MicroVM: Loading snapshot failed..', 1);
      logger.log('INFO', MAIN, 'main', 'Firecracker exiting successfully. exit_code=0');
      process.exit(0);
    },
  });
  // Firecracker has no SIGTERM handler: the default action ends it, and the guest with it.
  process.once('SIGTERM', () => {
    vmm.shutdown();
    process.kill(process.pid, 'SIGTERM');
  });
  // Its SIGPIPE handler only counts: a console reader that went away does not end the VMM.
  process.stdout.on('error', () => metrics.inc('signals', 'sigpipe'));
  const apiSock = value('api-sock')!;
  const server = createServer((req, res) => vmm.serve(req, res));
  server.once('error', (error: NodeJS.ErrnoException) => {
    // api_server_adapter.rs: binding over an existing path (even a stale socket) is AddrInUse.
    if (error.code === 'EADDRINUSE') {
      const display = `RunWithApiError error: Failed to open the API socket at: ${apiSock}. Check that it is not already used.`;
      exitWithError(`RunWithApi(FailedToBindSocket(${JSON.stringify(apiSock)}))`, display, 1);
    }
    const display = `RunWithApiError error: Failed to bind and run the HTTP server: IO error: ${rustIoError(error)}`;
    exitWithError('RunWithApi(FailedToBindAndRunHttpServer(..))', display, 1);
  });
  server.listen(hostPath(apiSock), () => {
    logger.log('INFO', MAIN, 'main', `Listening on API socket (${JSON.stringify(apiSock)}).`);
    logger.log('INFO', API, 'fc_api', 'API server started.');
  });
}

main(process.argv.slice(2));
