import { JitvmError } from '../core/errors.js';

/**
 * Why a stored snapshot was refused: `corrupt` (a file or the manifest changed, is missing, or is extra: remove the
 * snapshot and take it again) or `incompatible` (another backend, VMM version or format wrote it: restore it where it
 * was taken, or take it again here).
 */
export type SnapshotProblem = 'corrupt' | 'incompatible';

/**
 * A snapshot the store will not hand to a VMM. Snapshots are trusted input to the VMM, so any doubt is a refusal.
 * Code `invalid_state` when corrupt, `unsupported` when incompatible; the message says what to do.
 */
export class SnapshotRejectedError extends JitvmError {
  constructor(
    readonly snapshot: string,
    readonly problem: SnapshotProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(problem === 'corrupt' ? 'invalid_state' : 'unsupported', message, options);
  }
}

/** A corrupt-snapshot refusal whose message ends with the remedy: remove the snapshot and take it again. */
export function corruptSnapshot(name: string, what: string, options?: { cause?: unknown }): SnapshotRejectedError {
  return new SnapshotRejectedError(
    name,
    'corrupt',
    `snapshot "${name}" ${what}; it cannot be trusted: remove it (\`jitvm snapshot rm ${name}\`) and take it again`,
    options,
  );
}

/** `invalid_argument`: snapshot `name` already exists in the store at `root`. */
export function snapshotNameTaken(name: string, root: string, cause?: unknown): JitvmError {
  const message =
    `a snapshot named "${name}" already exists in ${root}: ` +
    `choose another name, or remove it first (\`jitvm snapshot rm ${name}\`)`;
  return new JitvmError('invalid_argument', message, { cause });
}

/** `not_found`: there is no snapshot `name` in the store at `root`. */
export function snapshotNotFound(name: string, root: string): JitvmError {
  return new JitvmError('not_found', `no snapshot named "${name}" in ${root}: \`jitvm snapshot ls\` lists them`);
}
