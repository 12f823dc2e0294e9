/** A typed client for Firecracker's REST API on its Unix socket: one method per endpoint jitvm uses. */
import type { z } from 'zod';
import { JitvmError, VmmError } from '../../core/errors.js';
import { delay } from '../../core/process.js';
import { parseJsonOrUndefined as parseJson } from '../../core/json.js';
import { type UnixHttpResponse, unixHttpRequest } from '../unix-http.js';
import {
  type ActionType,
  ApiErrorSchema,
  type BootSourceBody,
  type DriveBody,
  type InstanceInfo,
  InstanceInfoSchema,
  type LoggerBody,
  type MachineConfigBody,
  type MetricsBody,
  type NetworkInterfaceBody,
  type SnapshotCreateBody,
  type SnapshotLoadBody,
  type VsockBody,
} from './api-types.js';

/** Firecracker refused a request; `faultMessage` is its own explanation. */
export class FirecrackerApiError extends VmmError {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly faultMessage: string,
  ) {
    super(`Firecracker refused ${method} ${path} (HTTP ${status}): ${faultMessage}`);
  }
}

/** Firecracker's answers are a few hundred bytes; a (jailed, untrusted) VMM must not make us buffer more. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Requests can take a while only for snapshots (writing guest memory); configuration answers in microseconds. */
const REQUEST_TIMEOUT_MS = 60_000;
const SOCKET_POLL_MS = 5;

export class FirecrackerApi {
  constructor(readonly socketPath: string) {}

  /**
   * Resolves once the API answers `GET /`, polling while Firecracker creates its socket. Rejects as soon as
   * `isAlive` says the process is gone, or after `timeoutMs`.
   */
  async waitUntilReady(timeoutMs: number, isAlive: () => boolean): Promise<InstanceInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.describeInstance();
      } catch (error) {
        if (error instanceof FirecrackerApiError) throw error;
        if (!isAlive()) throw new VmmError('Firecracker exited before its API socket answered', { cause: error });
        if (Date.now() > deadline) {
          throw new JitvmError(
            'timeout',
            `Firecracker's API socket ${this.socketPath} did not answer in ${timeoutMs} ms`,
          );
        }
        await delay(SOCKET_POLL_MS);
      }
    }
  }

  async describeInstance(): Promise<InstanceInfo> {
    return this.get('/', InstanceInfoSchema);
  }

  putBootSource(body: BootSourceBody): Promise<void> {
    return this.send('PUT', '/boot-source', body);
  }

  putMachineConfig(body: MachineConfigBody): Promise<void> {
    return this.send('PUT', '/machine-config', body);
  }

  putDrive(body: DriveBody): Promise<void> {
    return this.send('PUT', `/drives/${encodeURIComponent(body.drive_id)}`, body);
  }

  putNetworkInterface(body: NetworkInterfaceBody): Promise<void> {
    return this.send('PUT', `/network-interfaces/${encodeURIComponent(body.iface_id)}`, body);
  }

  putVsock(body: VsockBody): Promise<void> {
    return this.send('PUT', '/vsock', body);
  }

  putLogger(body: LoggerBody): Promise<void> {
    return this.send('PUT', '/logger', body);
  }

  putMetrics(body: MetricsBody): Promise<void> {
    return this.send('PUT', '/metrics', body);
  }

  action(actionType: ActionType): Promise<void> {
    return this.send('PUT', '/actions', { action_type: actionType });
  }

  setVmState(state: 'Paused' | 'Resumed'): Promise<void> {
    return this.send('PATCH', '/vm', { state });
  }

  createSnapshot(body: SnapshotCreateBody): Promise<void> {
    return this.send('PUT', '/snapshot/create', body);
  }

  loadSnapshot(body: SnapshotLoadBody): Promise<void> {
    return this.send('PUT', '/snapshot/load', body);
  }

  private async get<S extends z.ZodType>(path: string, schema: S): Promise<z.output<S>> {
    const response = await this.exchange('GET', path, undefined);
    if (response.status !== 200) throw this.refusal('GET', path, response);
    const parsed = schema.safeParse(parseJson(response.body));
    if (!parsed.success)
      throw new VmmError(`Firecracker answered GET ${path} with an unexpected body: ${response.body}`);
    return parsed.data;
  }

  private async send(method: 'PUT' | 'PATCH', path: string, body: object): Promise<void> {
    const response = await this.exchange(method, path, JSON.stringify(body));
    if (response.status !== 204) throw this.refusal(method, path, response);
  }

  private refusal(method: string, path: string, response: UnixHttpResponse): FirecrackerApiError {
    const parsed = ApiErrorSchema.safeParse(parseJson(response.body));
    const fault = parsed.success ? parsed.data.fault_message : response.body.trim() || '(no explanation given)';
    return new FirecrackerApiError(method, path, response.status, fault);
  }

  private exchange(method: string, path: string, body: string | undefined): Promise<UnixHttpResponse> {
    return unixHttpRequest({
      socketPath: this.socketPath,
      method,
      path,
      body,
      peer: 'Firecracker',
      maxResponseBytes: MAX_RESPONSE_BYTES,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
  }
}
