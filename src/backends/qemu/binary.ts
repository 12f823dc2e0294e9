import type { Arch } from '../../core/config.js';
import { HostToolMissingError } from '../../core/errors.js';
import { type PathLookupHost, findOnPath, thisPathLookupHost } from '../../core/host-tools.js';
import { platformPath } from '../../core/paths.js';
import { qemuBinary } from './args.js';

/** How to install QEMU for `arch` on each platform. */
export function qemuInstallHint(arch: Arch, platform: NodeJS.Platform): string {
  if (platform === 'darwin') return 'brew install qemu';
  if (platform === 'win32') {
    return 'winget install --id SoftwareFreedomConservancy.QEMU --exact (it installs to %ProgramFiles%\\qemu)';
  }
  return `apt-get install ${arch === 'x86_64' ? 'qemu-system-x86' : 'qemu-system-arm'}`;
}

/**
 * The QEMU system emulator for `arch`: on PATH (`qemu-system-x86_64.exe` on Windows, through PATHEXT), else, on
 * Windows, in `%ProgramFiles%\qemu`, where QEMU's installer puts it without adding it to PATH.
 */
export function findQemu(arch: Arch, host: PathLookupHost = thisPathLookupHost): string | undefined {
  const name = qemuBinary(arch);
  const onPath = findOnPath(name, host);
  if (onPath || host.platform !== 'win32' || !host.env.ProgramFiles) return onPath;
  const installed = platformPath('win32').join(host.env.ProgramFiles, 'qemu', `${name}.exe`);
  return host.isExecutable(installed) ? installed : undefined;
}

/** The QEMU binary for `arch`, or HostToolMissingError saying how to install it here. */
export function requireQemu(arch: Arch, host: PathLookupHost = thisPathLookupHost): string {
  const binary = findQemu(arch, host);
  if (!binary) throw new HostToolMissingError(qemuBinary(arch), qemuInstallHint(arch, host.platform));
  return binary;
}
