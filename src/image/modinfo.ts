import { ElfFormatError, parseElf64 } from './elf.js';

/** The `.modinfo` facts of a kernel module that jitvm uses. */
export interface ModInfo {
  /** `name=`: the module name (underscores, as the kernel spells it). */
  name: string;
  /** `depends=`: names of the modules that must be loaded first. */
  depends: string[];
}

/**
 * Reads `name=` and `depends=` from the `.modinfo` section of a `.ko` file's bytes.
 * Throws ElfFormatError when the bytes are not an ELF64 LE module with a `.modinfo` section.
 */
export function readModInfo(ko: Buffer): ModInfo {
  const section = parseElf64(ko).sections.find((s) => s.name === '.modinfo');
  if (!section) throw new ElfFormatError('no .modinfo section');
  const fields = new Map<string, string>();
  for (const entry of section.data.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0 && !fields.has(entry.slice(0, eq))) fields.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  const name = fields.get('name');
  if (!name) throw new ElfFormatError('.modinfo has no name= field');
  const depends = (fields.get('depends') ?? '').split(',').filter((d) => d !== '');
  return { name, depends };
}
