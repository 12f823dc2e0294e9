/**
 * The ClientHello reader and the first-flight check of CONNECT tunnels, on hand-built records, on a real node:tls
 * ClientHello caught by a loopback server, and on random bytes.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type Socket, createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';

import type { EgressTarget } from '../../src/network/egress-target.js';
import { parseIpAddress } from '../../src/network/ip-address.js';
import { readFirstFlight } from '../../src/network/sni-guard.js';
import { MAX_CLIENT_HELLO_BYTES, inspectClientHello } from '../../src/network/tls-sni.js';

const u8 = (value: number): Buffer => Buffer.from([value]);
const u16 = (value: number): Buffer => Buffer.from([value >> 8, value & 0xff]);
const u24 = (value: number): Buffer => Buffer.from([value >> 16, (value >> 8) & 0xff, value & 0xff]);
const vector8 = (body: Buffer): Buffer => Buffer.concat([u8(body.length), body]);
const vector16 = (body: Buffer): Buffer => Buffer.concat([u16(body.length), body]);

const extension = (type: number, data: Buffer): Buffer => Buffer.concat([u16(type), vector16(data)]);
const hostName = (name: string, type = 0): Buffer => Buffer.concat([u8(type), vector16(Buffer.from(name, 'latin1'))]);
const serverName = (...entries: Buffer[]): Buffer => extension(0, vector16(Buffer.concat(entries)));
const sni = (name: string): Buffer => serverName(hostName(name));

interface HelloParts {
  /** undefined: no extensions block at all. */
  readonly extensions?: Buffer[] | undefined;
  readonly sessionId?: Buffer;
  readonly suites?: Buffer;
  readonly trailing?: Buffer;
  readonly handshakeType?: number;
  /** Added to the handshake length field, to make it lie. */
  readonly lengthSkew?: number;
  readonly recordVersion?: number;
}

/** A TLS 1.2-layout ClientHello in one record, as RFC 8446 §4.1.2 lays it out. */
function clientHello(parts: HelloParts = { extensions: [sni('allowed.test')] }): Buffer {
  const body = Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 7),
    vector8(parts.sessionId ?? Buffer.alloc(32, 1)),
    vector16(parts.suites ?? Buffer.from([0x13, 0x01, 0xc0, 0x2f])),
    vector8(Buffer.from([0])),
    parts.extensions ? vector16(Buffer.concat(parts.extensions)) : Buffer.alloc(0),
    parts.trailing ?? Buffer.alloc(0),
  ]);
  const handshake = Buffer.concat([u8(parts.handshakeType ?? 1), u24(body.length + (parts.lengthSkew ?? 0)), body]);
  return Buffer.concat([u8(0x16), u16(parts.recordVersion ?? 0x0301), u16(handshake.length), handshake]);
}

const otherExtension = extension(0x000a, Buffer.from([0, 2, 0, 0x1d]));
const KINDS = ['incomplete', 'not_tls', 'client_hello', 'invalid'];

describe('inspectClientHello', () => {
  it('reads the server name as sent, among other extensions', () => {
    assert.deepEqual(inspectClientHello(clientHello({ extensions: [otherExtension, sni('Allowed.TEST.')] })), {
      kind: 'client_hello',
      serverName: 'Allowed.TEST.',
    });
  });

  it('gives no server name for a ClientHello without extensions or without SNI', () => {
    const expected = { kind: 'client_hello', serverName: undefined };
    assert.deepEqual(inspectClientHello(clientHello({ extensions: undefined })), expected);
    assert.deepEqual(inspectClientHello(clientHello({ extensions: [otherExtension] })), expected);
    assert.deepEqual(inspectClientHello(clientHello({ extensions: [] })), expected);
  });

  it('asks for more on every strict prefix of a ClientHello, and says not_tls on the first other byte', () => {
    const hello = clientHello();
    for (let length = 0; length < hello.length; length++) {
      assert.deepEqual(inspectClientHello(hello.subarray(0, length)), { kind: 'incomplete' }, `${length} bytes`);
    }
    assert.deepEqual(inspectClientHello(Buffer.from('G')), { kind: 'not_tls' });
    assert.deepEqual(inspectClientHello(Buffer.from('SSH-2.0-OpenSSH\r\n')), { kind: 'not_tls' });
  });

  it('refuses handshake records that are not one well-formed ClientHello', () => {
    const cases: Array<[string, Buffer, RegExp]> = [
      ['record version', clientHello({ extensions: [], recordVersion: 0x0200 }), /not TLS 1\.x/],
      ['ServerHello', clientHello({ extensions: [], handshakeType: 2 }), /not a ClientHello/],
      ['spans records', clientHello({ extensions: [], lengthSkew: 1 }), /does not fit in its first record/],
      ['long session id', clientHello({ extensions: [], sessionId: Buffer.alloc(33) }), /session id/],
      ['odd suites', clientHello({ extensions: [], suites: Buffer.from([0x13]) }), /cipher suite/],
      ['no suites', clientHello({ extensions: [], suites: Buffer.alloc(0) }), /cipher suite/],
      ['trailing bytes', clientHello({ extensions: [], trailing: Buffer.from([0]) }), /bytes follow/],
      ['duplicate SNI', clientHello({ extensions: [sni('a.test'), sni('a.test')] }), /appears twice/],
      [
        'two names',
        clientHello({ extensions: [serverName(hostName('a.test'), hostName('b.test'))] }),
        /two host names/,
      ],
      ['name type', clientHello({ extensions: [serverName(hostName('a.test', 1))] }), /unknown name type/],
      ['empty list', clientHello({ extensions: [serverName()] }), /list is malformed/],
      ['empty name', clientHello({ extensions: [sni('')] }), /not printable ASCII/],
      ['control byte', clientHello({ extensions: [sni('a\x00.test')] }), /not printable ASCII/],
      ['non-ASCII', clientHello({ extensions: [sni('bücher.de')] }), /not printable ASCII/],
      ['empty SNI data', clientHello({ extensions: [extension(0, Buffer.alloc(0))] }), /runs past the end/],
    ];
    for (const [name, bytes, why] of cases) {
      const inspection = inspectClientHello(bytes);
      assert.ok(inspection.kind === 'invalid' && why.test(inspection.why), `${name}: ${JSON.stringify(inspection)}`);
    }
    const oversized = Buffer.concat([Buffer.from([0x16, 3, 1]), u16(16385)]);
    assert.deepEqual(inspectClientHello(oversized), { kind: 'invalid', why: 'the record is 16385 bytes, over 2^14' });
  });

  it('reads the ClientHello node:tls sends', async (t) => {
    let captured = Buffer.alloc(0);
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (chunk: Buffer) => (captured = Buffer.concat([captured, chunk])));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const tls = tlsConnect({
      port: (server.address() as { port: number }).port,
      host: '127.0.0.1',
      servername: 'real.example.test',
    });
    tls.on('error', () => undefined);
    t.after(async () => {
      tls.destroy();
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    });
    while (inspectClientHello(captured).kind === 'incomplete') await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(inspectClientHello(captured), { kind: 'client_hello', serverName: 'real.example.test' });
  });

  it('answers every input with one of its four kinds, never throwing', () => {
    const record = fc
      .uint8Array({ maxLength: 600 })
      .map((body) => Buffer.concat([Buffer.from([0x16, 3, 1]), u16(body.length), body]));
    const corrupted = fc
      .tuple(
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom(...[clientHello(), clientHello({ extensions: [otherExtension, sni('x.test')] })]),
      )
      .map(([at, value, hello]) => {
        const copy = Buffer.from(hello);
        copy[at % copy.length] = value;
        return copy;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), record, corrupted), (bytes) => {
        assert.ok(KINDS.includes(inspectClientHello(bytes).kind));
      }),
      { numRuns: 2000 },
    );
  });

  it('gives back any printable server name it is given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.domain(), fc.stringMatching(/^[!-~]{1,255}$/)), (name) => {
        assert.deepEqual(inspectClientHello(clientHello({ extensions: [sni(name)] })), {
          kind: 'client_hello',
          serverName: name,
        });
      }),
    );
  });
});

const target: EgressTarget = { host: 'allowed.test', ip: undefined, port: 443 };

/** Feeds `chunks` to readFirstFlight through a stream, then ends it if asked. */
async function firstFlight(chunks: Buffer[], options: { head?: Buffer; end?: boolean; to?: EgressTarget } = {}) {
  const guest = new PassThrough();
  const flight = readFirstFlight(guest, options.head ?? Buffer.alloc(0), options.to ?? target);
  for (const chunk of chunks) {
    guest.write(chunk);
    await new Promise((r) => setImmediate(r));
  }
  if (options.end) guest.end();
  return { outcome: await flight, guest };
}

describe('readFirstFlight', () => {
  it('lets a ClientHello naming the CONNECT host through, in any case, split anywhere', async () => {
    const hello = clientHello({ extensions: [sni('ALLOWED.test.')] });
    const { outcome, guest } = await firstFlight([hello.subarray(0, 3), hello.subarray(3, 60), hello.subarray(60)]);
    assert.deepEqual(outcome, { ok: true, bytes: hello });
    assert.equal(guest.listenerCount('data'), 0, 'the stream is left for the pipe');
    assert.ok(guest.isPaused());
  });

  it('refuses a ClientHello naming another host, or any host on a raw-IP target', async () => {
    const { outcome } = await firstFlight([clientHello({ extensions: [sni('evil.test')] })]);
    assert.equal(outcome.ok === false && outcome.reason, 'sni_mismatch');
    const address = parseIpAddress('192.0.2.1');
    const ipTarget = { host: '192.0.2.1', ip: address, port: 443 };
    const onIp = await firstFlight([clientHello()], { to: ipTarget });
    assert.equal(onIp.outcome.ok === false && onIp.outcome.reason, 'sni_mismatch');
  });

  it('lets a ClientHello without SNI and bytes that are not TLS through', async () => {
    assert.equal((await firstFlight([clientHello({ extensions: undefined })])).outcome.ok, true);
    assert.deepEqual((await firstFlight([Buffer.from('GET / HTTP/1.1\r\n')])).outcome, {
      ok: true,
      bytes: Buffer.from('GET / HTTP/1.1\r\n'),
    });
  });

  it('decides on the bytes that came with the CONNECT head without reading more', async () => {
    const hello = clientHello({ extensions: [sni('evil.test')] });
    const { outcome } = await firstFlight([], { head: hello });
    assert.equal(outcome.ok === false && outcome.reason, 'sni_mismatch');
  });

  it('refuses a stream that ends inside its first record, and passes one that ends before any byte', async () => {
    const cut = await firstFlight([clientHello().subarray(0, 20)], { end: true });
    assert.equal(cut.outcome.ok === false && cut.outcome.reason, 'invalid_tls');
    assert.deepEqual((await firstFlight([], { end: true })).outcome, { ok: true, bytes: Buffer.alloc(0) });
    const gone = new PassThrough();
    gone.destroy();
    assert.deepEqual(await readFirstFlight(gone, Buffer.alloc(0), target), { ok: true, bytes: Buffer.alloc(0) });
  });

  it('refuses a malformed ClientHello and never holds more than one record', async () => {
    const { outcome } = await firstFlight([clientHello({ extensions: [], handshakeType: 2 })]);
    assert.equal(outcome.ok === false && outcome.reason, 'invalid_tls');
    const header = Buffer.concat([Buffer.from([0x16, 3, 1]), u16(16384), u8(1), u24(16384)]);
    const filler = Buffer.alloc(MAX_CLIENT_HELLO_BYTES - header.length, 0);
    const full = await firstFlight([header, filler, Buffer.from('more')]);
    assert.equal(full.outcome.ok, false, 'decided once the record was complete');
    assert.equal(full.guest.readableLength, Buffer.from('more').length, 'bytes past the record stay unread');
  });
});
