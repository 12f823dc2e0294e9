import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ImageBuildError } from './errors.js';
import { readModInfo } from './modinfo.js';

/** A kernel module to put in the initramfs, with its resolved dependencies. */
export interface ResolvedModule {
  name: string;
  /** Path of the `.ko` file on the host. */
  path: string;
  depends: string[];
}

/** The modules of one kernel: loadable ones by name, and the names built into the kernel image. */
export interface ModuleIndex {
  files: ReadonlyMap<string, string>;
  builtin: ReadonlySet<string>;
}

/** The kernel spells module names with `_`; file names may use `-` (virtio-rng.ko is virtio_rng). */
export function normalizeModuleName(name: string): string {
  return name.replaceAll('-', '_');
}

/**
 * Indexes every `.ko` under `<modulesDir>/kernel` (modulesDir is `lib/modules/<version>`) by module name,
 * and reads `modules.builtin` when present.
 */
export async function indexModules(modulesDir: string): Promise<ModuleIndex> {
  const root = join(modulesDir, 'kernel');
  const entries = await readdir(root, { recursive: true }).catch((cause: unknown) => {
    throw new ImageBuildError(
      `cannot read kernel modules in ${root}`,
      'Rebuild with `jitvm image build --refresh-kernel`.',
      {
        cause,
      },
    );
  });
  const files = new Map<string, string>();
  for (const file of entries) {
    if (file.endsWith('.ko')) files.set(moduleNameOf(file), join(root, file));
  }
  const builtinList = await readFile(join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
  const builtin = new Set(
    builtinList
      .split('\n')
      .filter((line) => line.endsWith('.ko'))
      .map(moduleNameOf),
  );
  return { files, builtin };
}

/**
 * Resolves `requested` and everything they depend on into load order: dependencies first, each module once.
 * Modules built into the kernel are skipped. A missing module or a dependency cycle throws ImageBuildError.
 */
export async function resolveModules(index: ModuleIndex, requested: readonly string[]): Promise<ResolvedModule[]> {
  const order: ResolvedModule[] = [];
  const done = new Set<string>();
  const visiting: string[] = [];

  const visit = async (rawName: string, neededBy: string | undefined): Promise<void> => {
    const name = normalizeModuleName(rawName);
    if (done.has(name)) return;
    if (visiting.includes(name)) {
      const cycle = [...visiting.slice(visiting.indexOf(name)), name].join(' → ');
      throw new ImageBuildError(`kernel module dependency cycle: ${cycle}`, 'The kernel package looks broken.');
    }
    const path = index.files.get(name);
    if (!path) {
      if (index.builtin.has(name)) return;
      const who = neededBy ? ` (needed by ${neededBy})` : '';
      throw new ImageBuildError(
        `kernel module ${name}${who} is neither in this kernel's module tree nor built in`,
        'This kernel does not support it; use a kernel that does.',
      );
    }
    visiting.push(name);
    const { depends } = await readModuleInfo(path);
    for (const dep of depends) await visit(dep, name);
    visiting.pop();
    done.add(name);
    order.push({ name, path, depends: depends.map(normalizeModuleName) });
  };

  for (const name of requested) await visit(name, undefined);
  return order;
}

function moduleNameOf(file: string): string {
  return normalizeModuleName(file.slice(file.lastIndexOf('/') + 1, -'.ko'.length));
}

async function readModuleInfo(path: string): Promise<{ depends: string[] }> {
  try {
    return readModInfo(await readFile(path));
  } catch (cause) {
    throw new ImageBuildError(
      `cannot read the module info of ${path}: ${(cause as Error).message}`,
      'The kernel package looks damaged; rebuild with `jitvm image build --refresh-kernel`.',
      { cause },
    );
  }
}
