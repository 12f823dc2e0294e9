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

/** `<base>/<exec name>/<id>`: the jailer's per-VM directory, removed with the VM. */
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
 * Firecracker's host pid. The jailer execs Firecracker, so it is the pid we spawned, except with `--new-pid-ns`,
 * where the jailer forks it and writes `<root>/<exec name>.pid`.
 */
export async function jailedVmmPid(
  options: JailerOptions,
  firecracker: string,
  id: string,
  spawnedPid: number,
  jailerAlive: () => boolean,
): Promise<number> {
  if (!options.newPidNs) return spawnedPid;
  const pidFile = join(jailRoot(options, firecracker, id), `${basename(firecracker)}.pid`);
  const deadline = Date.now() + PID_FILE_TIMEOUT_MS;
  for (;;) {
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) return pid;
    }
    if (Date.now() > deadline || (!jailerAlive() && !existsSync(pidFile))) {
      throw new JitvmError('vmm_failed', `the jailer did not write ${pidFile} (is it running with --new-pid-ns?)`);
    }
    await delay(5);
  }
}
