import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const seccompByBinary = new Map<string, Promise<boolean>>();

/** Whether this QEMU build was compiled with seccomp (`-sandbox`); asked once per binary per process. */
export function qemuHasSeccomp(binary: string): Promise<boolean> {
  let answer = seccompByBinary.get(binary);
  if (!answer) {
    answer = execFileAsync(binary, ['-help'], { timeout: 5000 })
      .then(({ stdout }) => /^-sandbox /m.test(stdout))
      .catch(() => false);
    seccompByBinary.set(binary, answer);
  }
  return answer;
}
