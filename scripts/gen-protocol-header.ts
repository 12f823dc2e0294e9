/** Writes guest/protocol.h from src/channel/protocol.ts so the C agent and the host share one definition. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderProtocolHeader } from '../src/channel/protocol-header.js';

const target = fileURLToPath(new URL('../../guest/protocol.h', import.meta.url));
writeFileSync(target, renderProtocolHeader());
console.log(`wrote ${target}`);
