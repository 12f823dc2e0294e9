import { z } from 'zod';
import { InvalidArgumentError } from './errors.js';

export const ARCHES = ['x86_64', 'aarch64'] as const;
export type Arch = (typeof ARCHES)[number];

export const ACCELERATORS = ['kvm', 'hvf', 'whpx', 'tcg'] as const;
export type Accelerator = (typeof ACCELERATORS)[number];

/** The host's architecture in jitvm's naming, or undefined on a host jitvm cannot run guests for. */
export function hostArch(): Arch | undefined {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  return undefined;
}

const kernelArg = z
  .string()
  .min(1)
  .regex(/^[^\s"]+$/, 'a kernel argument may not contain spaces or quotes');

/** What a backend needs to boot one VM. Every field has a sane default and a hard limit. */
export const VmConfigSchema = z.object({
  cpus: z.number().int().min(1).max(64).default(1),
  memoryMiB: z.number().int().min(64).max(65536).default(256),
  kernel: z.string().min(1, 'kernel must be a path to a kernel image'),
  initrd: z.string().min(1, 'initrd must be a path to an initramfs'),
  kernelArgs: z.array(kernelArg).max(64).default([]),
  arch: z.enum(ARCHES).default(hostArch() ?? 'x86_64'),
  accelerator: z.enum(ACCELERATORS).optional(),
  bootTimeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
});

export type VmConfigInput = z.input<typeof VmConfigSchema>;
export type VmConfig = z.output<typeof VmConfigSchema>;

/** Turns a zod failure into one readable line per wrong field, naming the field and what it accepts. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(input)'}: ${issue.message}`)
    .join('; ');
}

/** Validates caller input into a complete VmConfig or throws InvalidArgumentError naming each wrong field. */
export function parseVmConfig(input: unknown): VmConfig {
  return parseWith(VmConfigSchema, input, 'invalid VM config');
}

/** Parses `input` with `schema`, throwing InvalidArgumentError with `context` and every wrong field. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, context: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new InvalidArgumentError(`${context}: ${describeZodError(result.error)}`);
  return result.data;
}
