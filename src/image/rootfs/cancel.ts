import { CancelledError } from '../../core/errors.js';

/** Turns whatever an aborted rootfs build threw into CancelledError; other errors pass through. */
export function asCancelled(signal: AbortSignal | undefined): (error: unknown) => never {
  return (error) => {
    if (signal?.aborted) throw new CancelledError('the rootfs image build was cancelled');
    throw error;
  };
}
