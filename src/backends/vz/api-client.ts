/**
 * A typed client for vfkit's REST API on its Unix socket (`--restful-uri unix://…`): one method per endpoint.
 * Shapes from crc-org/vfkit@b2bc27e5 pkg/rest/rest.go and pkg/rest/vf/vm_config.go (the code, where doc/usage.md
 * differs: a state change answers 202, and /vm/inspect has `vcpus` and `memoryBytes`).
 */
import { z } from 'zod';
import { JitvmError, VmmError } from '../../core/errors.js';
import { parseJsonOrUndefined as parseJson } from '../../core/json.js';
import { delay } from '../../core/process.js';
import { type UnixHttpResponse, unixHttpRequest } from '../unix-http.js';
import { VFKIT_STATES } from './args.js';

/** vfkit refused a request or answered it with something else than documented; `body` is what it said. */
export class VfkitApiError extends VmmError {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`vfkit refused ${method} ${path} (HTTP ${status}): ${body || '(no explanation given)'}`);
  }
}

/** GET /vm/state (gin.H in VzVirtualMachine.GetVMState). */
export const VmStateSchema = z.object({
  state: z.enum(VFKIT_STATES),
  canStart: z.boolean(),
  canPause: z.boolean(),
  canResume: z.boolean(),
  /** VZ canRequestStop: the guest can be asked to power off (POST Stop). */
  canStop: z.boolean(),
  /** VZ canStop: the VM can be stopped at once (POST HardStop); always false before macOS 12. */
  canHardStop: z.boolean(),
});
export type VfkitVmState = z.infer<typeof VmStateSchema>;

/** POST /vm/state bodies (pkg/rest/define/config.go StateChange). */
export type VfkitStateChange = 'Pause' | 'Resume' | 'Stop' | 'HardStop';

/** GET /vm/inspect: vfkit's config.VirtualMachine as JSON (pkg/config/config.go, json.go). */
export const InspectSchema = z.object({
  vcpus: z.number().int(),
  memoryBytes: z.number().int(),
  bootloader: z.looseObject({ kind: z.string() }),
  devices: z.array(z.looseObject({ kind: z.string() })).optional(),
});
export type VfkitInspect = z.infer<typeof InspectSchema>;

/** gin's error answers: `{"error": "…"}` (400 for a body it cannot bind, 500 when VZ refused the change). */
const ErrorBodySchema = z.object({ error: z.string() });

/** vfkit's answers are a few hundred bytes (inspect lists the devices): a compromised VMM must not make us buffer more. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** State changes wait for VZ's completion handler (pause, stop); nothing takes longer than a few seconds. */
const REQUEST_TIMEOUT_MS = 30_000;
const POLL_MS = 10;

export class VfkitApi {
  constructor(readonly socketPath: string) {}

  getState(): Promise<VfkitVmState> {
    return this.get('/vm/state', VmStateSchema);
  }

  inspect(): Promise<VfkitInspect> {
    return this.get('/vm/inspect', InspectSchema);
  }

  /** POST /vm/state: resolves once VZ completed the change (pause, resume, hard stop) or accepted the request (stop). */
  async setState(state: VfkitStateChange): Promise<void> {
    const response = await this.exchange('POST', '/vm/state', JSON.stringify({ state }));
    // doc/usage.md says 200; the handler answers c.Status(http.StatusAccepted).
    if (response.status !== 202 && response.status !== 200) throw this.refusal('POST', '/vm/state', response);
  }

  /**
   * Polls GET /vm/state until the VM runs (or is paused), as vfkit starts its API before it starts the VM. Rejects as
   * soon as `isAlive` says the process is gone, when the VM stopped or failed, or after `timeoutMs`.
   */
  async waitUntilRunning(timeoutMs: number, isAlive: () => boolean): Promise<VfkitVmState> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let state: VfkitVmState | undefined;
      try {
        state = await this.getState();
      } catch (error) {
        if (error instanceof VfkitApiError) throw error;
        if (!isAlive()) throw new VmmError('vfkit exited before its REST API answered', { cause: error });
      }
      if (state?.state === 'VirtualMachineStateRunning' || state?.state === 'VirtualMachineStatePaused') return state;
      if (state?.state === 'VirtualMachineStateError') throw new VmmError('vfkit reports the VM in its Error state');
      if (state?.state === 'VirtualMachineStateStopped' && !state.canStart) {
        throw new VmmError('the VM stopped while vfkit was starting it');
      }
      if (!isAlive()) throw new VmmError(`vfkit exited while starting the VM${state ? ` (${state.state})` : ''}`);
      if (Date.now() > deadline) {
        throw new JitvmError(
          'timeout',
          `vfkit did not report the VM running within ${timeoutMs} ms${state ? ` (it is ${state.state})` : ''}`,
        );
      }
      await delay(POLL_MS);
    }
  }

  private async get<S extends z.ZodType>(path: string, schema: S): Promise<z.output<S>> {
    const response = await this.exchange('GET', path, undefined);
    if (response.status !== 200) throw this.refusal('GET', path, response);
    const parsed = schema.safeParse(parseJson(response.body));
    if (!parsed.success) {
      throw new VfkitApiError('GET', path, response.status, `unexpected body: ${response.body.slice(0, 500)}`);
    }
    return parsed.data;
  }

  private refusal(method: string, path: string, response: UnixHttpResponse): VfkitApiError {
    const parsed = ErrorBodySchema.safeParse(parseJson(response.body));
    const body = parsed.success ? parsed.data.error : response.body.trim();
    return new VfkitApiError(method, path, response.status, body);
  }

  private exchange(method: string, path: string, body: string | undefined): Promise<UnixHttpResponse> {
    return unixHttpRequest({
      socketPath: this.socketPath,
      method,
      path,
      body,
      peer: 'vfkit',
      maxResponseBytes: MAX_RESPONSE_BYTES,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
  }
}
