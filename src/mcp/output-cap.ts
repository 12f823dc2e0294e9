/** Bytes of one output stream (stdout or stderr) that a tool result carries at most. */
export const MAX_STREAM_BYTES = 64 * 1024;

/**
 * Keeps the first and the last half of `limit` bytes of a stream of any length, in memory bounded by `limit` plus one
 * chunk, and counts what falls between. An agent usually needs both ends of long output: the command it started and
 * the error it ended with.
 */
export class OutputCap {
  private readonly head: Buffer[] = [];
  private readonly tail: Buffer[] = [];
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private headBytes = 0;
  private tailBytes = 0;
  private totalBytes = 0;

  constructor(private readonly limit: number = MAX_STREAM_BYTES) {
    this.headLimit = Math.floor(limit / 2);
    this.tailLimit = limit - this.headLimit;
  }

  push(chunk: Buffer): void {
    this.totalBytes += chunk.length;
    const room = this.headLimit - this.headBytes;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.head.push(part);
      this.headBytes += part.length;
      chunk = chunk.subarray(part.length);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes - this.tail[0]!.length >= this.tailLimit) this.tailBytes -= this.tail.shift()!.length;
  }

  /** Bytes seen but left out of `text()`. */
  get truncatedBytes(): number {
    return Math.max(0, this.totalBytes - this.limit);
  }

  /**
   * The kept bytes decoded as UTF-8, with a `[truncated N bytes]` line where bytes were left out (a character cut
   * at either edge of the gap decodes as U+FFFD).
   */
  text(): string {
    const tail = Buffer.concat(this.tail);
    const keptTail = tail.subarray(Math.max(0, tail.length - this.tailLimit));
    const head = Buffer.concat(this.head);
    if (this.truncatedBytes === 0) return Buffer.concat([head, keptTail]).toString('utf8');
    return `${head.toString('utf8')}\n[truncated ${this.truncatedBytes} bytes]\n${keptTail.toString('utf8')}`;
  }
}
