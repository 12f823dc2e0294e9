/**
 * Firecracker's jailer (docs/jailer.md): it builds `<chroot base>/<exec name>/<id>/root`, enters it with pivot_root,
 * joins an optional network namespace and cgroup, drops to `uid`/`gid` and execs Firecracker. It needs root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { JitvmError } from '../../core/errors.js';
import { delay } from '../../core/process.js';

export const JailerOptionsSchema = z
  .object({
    /** The jailer binary; default `$JITVM_JAILER`, else `jailer` on PATH. */
    binary: z.string().min(1).optional(),
    /** Who Firecracker runs as once jailed. */
    uid: z.number().int().min(0),
    gid: z.number().int().min(0),
    chrootBaseDir: z.string().min(1).default('/srv/jailer'),
    /** A network namespace handle to join, e.g. `/var/run/netns/jv0`. */
    netns: z.string().min(1).optional(),
    /** setsid() and stdio to /dev/null: the guest console is then not captured. */
    daemonize: z.boolean().default(false),
    /** Run Firecracker as PID 1 of a new PID namespace; its host pid is read from the jail's pid file. */
    newPidNs: z.boolean().default(false),
    /** cgroup v2 files to set, e.g. `{ 'cpu.max': '50000 100000', 'memory.max': '536870912' }`. */
    cgroups: z
      .record(z.string().regex(/^[a-z_]+\.[a-z_.]+$/, 'a cgroup file name like cpu.max'), z.string())
      .default({}),
    /** Where the VM's cgroup is created, relative to the cgroup v2 root (default: the exec file's name). */
    parentCgroup: z
      .string()
      .regex(/^[A-Za-z0-9_./-]+$/)
      .optional(),
  })
  .strict();
export type JailerOptionsInput = z.input<typeof JailerOptionsSchema>;
export type JailerOptions = z.output<typeof JailerOptionsSchema>;

/** Firecracker's API socket inside the jail (passed explicitly rather than relying on the default /run/…). */
export const JAILED_API_SOCKET = 'api.sock';

const CGROUP_V2_ROOT = '/sys/fs/cgroup';
const PID_FILE_TIMEOUT_MS = 10_000;

/**
 * `<base>/<exec name>/<id>`: the jailer's per-VM directory, removed with the VM. `execFile` must be the real path:
 * the jailer names the jail (and the default parent cgroup) after the file a symlink points to.
 */
export function jailDir(options: JailerOptions, firecracker: string, id: string): string {
  return join(options.chrootBaseDir, basename(firecracker), id);
}

/** The chroot Firecracker lives in. */
export function jailRoot(options: JailerOptions, firecracker: string, id: string): string {
  return join(jailDir(options, firecracker, id), 'root');
}

/** The cgroup the jailer creates for the VM; only when cgroup files are set (else it creates none). */
export function jailCgroup(options: JailerOptions, firecracker: string, id: string): string | undefined {
  if (Object.keys(options.cgroups).length === 0) return undefined;
  return join(CGROUP_V2_ROOT, options.parentCgroup ?? basename(firecracker), id);
}

/** The jailer's argv; everything after `--` goes to Firecracker. */
export function jailerArgs(options: JailerOptions, firecracker: string, id: string): string[] {
  // prettier-ignore
  return [
    '--id', id,
    '--exec-file', firecracker,
    '--uid', String(options.uid),
    '--gid', String(options.gid),
    '--cgroup-version', '2',
    '--chroot-base-dir', options.chrootBaseDir,
    ...Object.entries(options.cgroups).flatMap(([file, value]) => ['--cgroup', `${file}=${value}`]),
    ...(options.parentCgroup ? ['--parent-cgroup', options.parentCgroup] : []),
    ...(options.netns ? ['--netns', options.netns] : []),
    ...(options.daemonize ? ['--daemonize'] : []),
    ...(options.newPidNs ? ['--new-pid-ns'] : []),
    '--', '--api-sock', `/${JAILED_API_SOCKET}`,
  ];
}

/**
 * Firecracker's host pid, from the pid file the jailer writes in every mode (`<root>/<exec name>.pid`): it is the
 * jailer's own pid when it simply execs Firecracker, another one after `--daemonize` (a double fork) or
 * `--new-pid-ns` (a clone). A jailer that exits with an error before writing it fails at once.
 */
export async function jailedVmmPid(pidFile: string, jailerFailed: () => boolean): Promise<number> {
  const deadline = Date.now() + PID_FILE_TIMEOUT_MS;
  for (;;) {
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
    if (Number.isInteger(pid) && pid > 0) return pid;
    if (jailerFailed()) throw new JitvmError('vmm_failed', 'the jailer failed before starting Firecracker');
    if (Date.now() > deadline) throw new JitvmError('timeout', `the jailer did not write ${pidFile} in time`);
    await delay(5);
  }
}

/** Where the jailer writes Firecracker's pid. */
export function jailPidFile(options: JailerOptions, execFile: string, id: string): string {
  return join(jailRoot(options, execFile, id), `${basename(execFile)}.pid`);
}
