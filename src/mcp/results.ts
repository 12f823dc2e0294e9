import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { JitvmError, type ErrorCode } from '../core/errors.js';

/** What to do next after errors whose own message cannot know the MCP tools. */
const NEXT_STEP: Partial<Record<ErrorCode, string>> = {
  agent_lost: 'The sandbox is probably dead: destroy_sandbox it and create_sandbox a new one.',
  vmm_failed: 'The sandbox is probably dead: destroy_sandbox it and create_sandbox a new one.',
  boot_failed: 'Nothing was left running; retry create_sandbox, perhaps with fewer options.',
  host_tool_missing: 'The host running this MCP server lacks a program; tell the user, retrying will not help.',
  resource_exhausted:
    'The host is at its limit of sandboxes or guest memory: destroy_sandbox those you no longer need, then retry.',
};

/** A successful tool result: `text` for the model to read, `structured` for programs. */
export function toolResult(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured };
}

/** A tool error (`isError: true`) saying what went wrong, with the jitvm error code, and what to do next. */
export function toolError(error: unknown): CallToolResult {
  const text =
    error instanceof JitvmError
      ? [`${error.code}: ${error.message}`, NEXT_STEP[error.code]].filter(Boolean).join('\n')
      : `unexpected error (a jitvm bug; please report it): ${error instanceof Error ? error.message : String(error)}`;
  return { content: [{ type: 'text', text }], isError: true };
}
