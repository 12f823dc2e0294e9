/**
 * Firecracker's API bodies, as its swagger defines them (src/firecracker/swagger/firecracker.yaml): request bodies as
 * types, response bodies as zod schemas since they come from another process.
 */
import { z } from 'zod';

export interface TokenBucketBody {
  size: number;
  /** Milliseconds to refill the whole bucket. */
  refill_time: number;
  one_time_burst?: number;
}

export interface RateLimiterBody {
  bandwidth?: TokenBucketBody;
  ops?: TokenBucketBody;
}

export interface BootSourceBody {
  kernel_image_path: string;
  initrd_path?: string;
  boot_args?: string;
}

export interface MachineConfigBody {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
}

export interface DriveBody {
  drive_id: string;
  is_root_device: boolean;
  is_read_only: boolean;
  path_on_host: string;
  rate_limiter?: RateLimiterBody;
}

export interface NetworkInterfaceBody {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  rx_rate_limiter?: RateLimiterBody;
  tx_rate_limiter?: RateLimiterBody;
}

export interface VsockBody {
  guest_cid: number;
  uds_path: string;
}

export interface LoggerBody {
  log_path: string;
  level?: 'Error' | 'Warning' | 'Info' | 'Debug' | 'Trace' | 'Off';
  show_level?: boolean;
  show_log_origin?: boolean;
}

export interface MetricsBody {
  metrics_path: string;
}

export type ActionType = 'InstanceStart' | 'SendCtrlAltDel' | 'FlushMetrics';

export interface SnapshotCreateBody {
  snapshot_path: string;
  mem_file_path: string;
  snapshot_type?: 'Full' | 'Diff';
}

export interface SnapshotLoadBody {
  snapshot_path: string;
  mem_backend: { backend_type: 'File' | 'Uffd'; backend_path: string };
  resume_vm?: boolean;
  vsock_override?: { uds_path: string };
  network_overrides?: { iface_id: string; host_dev_name: string }[];
}

export const InstanceInfoSchema = z.object({
  app_name: z.string(),
  id: z.string(),
  state: z.enum(['Not started', 'Running', 'Paused']),
  vmm_version: z.string(),
});
export type InstanceInfo = z.infer<typeof InstanceInfoSchema>;

export const ApiErrorSchema = z.object({ fault_message: z.string() });
