import { JitvmError } from '../core/errors.js';

/** Building the guest image failed; `remedy` says what the user can do about it (also appended to the message). */
export class ImageBuildError extends JitvmError {
  constructor(
    message: string,
    readonly remedy: string,
    options?: { cause?: unknown },
  ) {
    super('image_build_failed', `${message}\n${remedy}`, options);
  }
}
