import * as p from './protocol.js';

function stringDefines(prefix: string, table: Record<string, string>): string[] {
  return Object.entries(table).map(([name, value]) => `#define ${prefix}${name} "${value}"`);
}

function defines(prefix: string, table: Record<string, number>): string[] {
  return Object.entries(table).map(([name, value]) => `#define ${prefix}${name} ${value}`);
}

/** Renders the C header the guest agent compiles against (generated, checked in, drift-tested). */
export function renderProtocolHeader(): string {
  const lines = [
    '/* Generated from src/channel/protocol.ts by `npm run gen:protocol`. Do not edit. */',
    '#ifndef JITVM_PROTOCOL_H',
    '#define JITVM_PROTOCOL_H',
    '',
    `#define PROTOCOL_VERSION ${p.PROTOCOL_VERSION}`,
    `#define MIN_PROTOCOL_VERSION ${p.MIN_PROTOCOL_VERSION}`,
    `#define FRAME_HEADER_SIZE ${p.FRAME_HEADER_SIZE}`,
    `#define MAX_PAYLOAD ${p.MAX_PAYLOAD}`,
    `#define DATA_CHUNK ${p.DATA_CHUNK}`,
    `#define INITIAL_WINDOW ${p.INITIAL_WINDOW}`,
    `#define MAX_STREAMS ${p.MAX_STREAMS}`,
    `#define AGENT_PORT_NAME "${p.AGENT_PORT_NAME}"`,
    `#define AGENT_VSOCK_PORT ${p.AGENT_VSOCK_PORT}`,
    `#define AGENT_CHANNEL_ARG_SERIAL "${p.AGENT_CHANNEL_ARG.SERIAL}"`,
    `#define AGENT_CHANNEL_ARG_VSOCK "${p.AGENT_CHANNEL_ARG.VSOCK}"`,
    ...stringDefines('BOOT_ARG_', p.BOOT_ARG),
    `#define FLAG_FIN ${p.FLAG_FIN}`,
    '',
    ...defines('MSG_', p.MsgType),
    '',
    ...defines('ERR_', p.ErrorCode),
    '',
    ...defines('CAP_', p.Capability),
    ...defines('IDENTITY_', p.IdentityLimit),
    ...defines('EXEC_FLAG_', p.ExecFlag),
    ...defines('FILE_WRITE_FLAG_', p.FileWriteFlag),
    ...defines('REMOVE_FLAG_', p.RemoveFlag),
    ...defines('EXIT_REASON_', p.ExitReason),
    ...defines('WINDOW_', p.WindowChannel),
    ...defines('ENTRY_', p.EntryType),
    '',
    '#endif',
    '',
  ];
  return lines.join('\n');
}
