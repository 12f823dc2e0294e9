import { readFileSync } from 'node:fs';

/** The last `lines` lines of a log file (serial console, VMM stderr), or '' when there is none yet. */
export function readConsoleTail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
