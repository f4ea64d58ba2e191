/**
 * Splits one direction of an IMAP stream into lines and literal bytes, for the relays that
 * sit between popsync and a lab server (imap-front.ts; the tests' throttling relay) and must
 * read commands without being fooled by message text that looks like one. Memory is bounded
 * by the longest line, never by a literal.
 */
const CRLF = Buffer.from('\r\n');

/** A literal announced at the end of a line: `{n}`, `{n+}` (LITERAL+/-), `~{n}` (BINARY). */
export const LITERAL_AT_END = /~?\{(\d+)(\+|-)?\}$/;

export class ImapStreamSplitter {
  private pending = Buffer.alloc(0);
  private literalLeft = 0;
  private raw = false;

  /**
   * `onLine` gets each line without its CRLF; `onBytes` gets literal bytes, and every byte
   * after passThrough(), unchanged.
   */
  constructor(
    private readonly onLine: (line: Buffer) => void,
    private readonly onBytes: (bytes: Buffer) => void,
  ) {}

  /** From now on bytes are copied as they are (TLS after STARTTLS). */
  passThrough(): void {
    this.raw = true;
  }

  /** The literal the last line announced will not come (a synchronising one that was refused). */
  cancelLiteral(): void {
    this.literalLeft = 0;
  }

  push(chunk: Buffer): void {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.raw) {
        this.onBytes(data);
        return;
      }
      if (this.literalLeft > 0) {
        const n = Math.min(this.literalLeft, data.length);
        this.onBytes(data.subarray(0, n));
        this.literalLeft -= n;
        data = data.subarray(n);
        continue;
      }
      const eol = data.indexOf(CRLF);
      if (eol < 0) {
        this.pending = Buffer.from(data);
        return;
      }
      const line = data.subarray(0, eol);
      data = data.subarray(eol + 2);
      const m = LITERAL_AT_END.exec(line.toString('latin1'));
      this.literalLeft = m ? Number(m[1]) : 0;
      this.onLine(line);
    }
  }
}
