import { JitvmError } from '../core/errors.js';

/**
 * A cap on the sandboxes held at once by all the sessions of one MCP server (an HTTP server's many clients), booting
 * ones included: each session's own cap alone would let N sessions hold N times as many.
 */
export class SandboxBudget {
  private held = 0;

  constructor(readonly max: number) {}

  /** Takes a place, or refuses (`resource_exhausted`); the function returned gives it back (once). */
  take(): () => void {
    if (this.held >= this.max) {
      throw new JitvmError(
        'resource_exhausted',
        `this MCP server holds ${this.max} sandboxes across its sessions, the most it may; ` +
          'destroy_sandbox those you no longer need, or retry later',
      );
    }
    this.held++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.held--;
    };
  }
}
