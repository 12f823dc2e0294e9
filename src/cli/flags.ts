import { type Command, Option } from 'commander';
import { ARCHES, type Arch } from '../core/config.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { SandboxOptions } from '../sandbox/options.js';

/** The VM flags shared by `run` and `create`. */
export function addVmFlags(command: Command): Command {
  return command
    .addOption(new Option('--cpus <n>', 'virtual CPUs').argParser(positiveInt('--cpus')))
    .addOption(new Option('--memory <mib>', 'guest memory in MiB').argParser(positiveInt('--memory')))
    .option('--backend <name>', 'hypervisor backend (default: best available, or $JITVM_BACKEND)')
    .addOption(archOption("guest architecture (default: the host's; another one runs under emulation)"))
    .option('--kernel <path>', "boot this kernel instead of the built image's (e.g. one built on Debian, on a Mac)")
    .option('--initrd <path>', "boot this initramfs instead of the built image's")
    .option('--from-snapshot <name>', 'start from a stored snapshot (`jitvm snapshot ls`) instead of booting')
    .addOption(
      new Option('--boot-timeout <ms>', 'how long to wait for the guest to boot').argParser(
        positiveInt('--boot-timeout'),
      ),
    );
}

export interface VmFlags {
  cpus?: number;
  memory?: number;
  backend?: string;
  arch?: Arch;
  kernel?: string;
  initrd?: string;
  fromSnapshot?: string;
  bootTimeout?: number;
}

export function sandboxOptionsFrom(flags: VmFlags): SandboxOptions {
  return {
    cpus: flags.cpus,
    memoryMiB: flags.memory,
    backend: flags.backend,
    arch: flags.arch,
    kernel: flags.kernel,
    initrd: flags.initrd,
    fromSnapshot: flags.fromSnapshot,
    bootTimeoutMs: flags.bootTimeout,
  };
}

/** `--arch x86_64|aarch64`. */
export function archOption(description: string): Option {
  return new Option('--arch <arch>', description).choices(ARCHES);
}

/** The command flags shared by `run` and `exec`. */
export function addCommandFlags(command: Command): Command {
  return command
    .addOption(
      new Option('--timeout <ms>', 'kill the command (and its children) after this long').argParser(
        positiveInt('--timeout'),
      ),
    )
    .addOption(
      new Option('-e, --env <K=V>', 'set an environment variable (repeatable)').argParser(collectEnv).default({}),
    )
    .option('-w, --cwd <dir>', 'working directory in the guest')
    .option('--no-stdin', "do not forward this terminal's standard input");
}

export interface CommandFlags {
  timeout?: number;
  env: Record<string, string>;
  cwd?: string;
  stdin: boolean;
}

/** A commander argument parser for a whole number above 0, refusing anything else with the flag's name. */
export function positiveInt(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed <= 0)
      throw new InvalidArgumentError(`${flag} must be a positive integer, got "${value}"`);
    return parsed;
  };
}

function collectEnv(value: string, previous: Record<string, string>): Record<string, string> {
  const equals = value.indexOf('=');
  if (equals <= 0) throw new InvalidArgumentError(`--env expects KEY=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, equals)]: value.slice(equals + 1) };
}
