/**
 * Bare LF becomes CRLF on the way to APPEND, chunk by chunk as the message arrives.
 *
 * IMAP messages are CRLF-delimited (RFC 3501 section 4.3, RFC 5322), and servers disagree on
 * a bare LF: Dovecot and Courier add the CR themselves, but Cyrus answers NO ("Message contains
 * bare newlines"), so mail from a POP3 server serving LF-only messages never arrived there.
 * Adding the CR here gives every destination what Dovecot and Courier made of it anyway.
 *
 * Only LF is touched. The normalised fingerprint (fingerprint.ts) drops every CR, so a copy
 * with the CR added is still recognised as its original (reconciliation, adoption, verify);
 * turning a bare CR into CRLF would add an LF and change the fingerprint, and Cyrus keeps
 * bare CR as it is, so bare CR is sent as received. sha256 and fingerprint stay those of the
 * source bytes; only the bytes sent (and so the literal's length) change.
 *
 * A CR ending one chunk and the LF starting the next are one CRLF: the last byte is carried.
 * A chunk without a bare LF is returned as it is (no copy); one with some costs one copy of
 * the chunk, so memory stays bounded by the chunk whatever the message holds.
 *
 * The receiver already knows, from the fingerprint's scan of the chunk (fingerprint.ts,
 * lastHadBareLf), whether it holds a bare LF; told that it does not, convert() only carries the
 * last byte. Searching each line for its LF again cost ~40 ms of CPU per 3,000 typical messages.
 */
const CR = 0x0d;
const LF = 0x0a;

export class BareLfToCrlf {
  private lastWasCr = false;

  /** `mayHaveBareLf` false: the caller knows the chunk has none (by the same rule, the carried CR included). */
  convert(chunk: Buffer, mayHaveBareLf = true): Buffer {
    if (chunk.length === 0) return chunk;
    const crBefore = this.lastWasCr;
    this.lastWasCr = chunk[chunk.length - 1] === CR;
    if (!mayHaveBareLf) return chunk;
    let count = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) if (bare(chunk, i, crBefore)) count++;
    if (count === 0) return chunk;
    const out = Buffer.allocUnsafe(chunk.length + count);
    let j = 0;
    let from = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      if (!bare(chunk, i, crBefore)) continue;
      j += chunk.copy(out, j, from, i);
      out[j++] = CR;
      from = i;
    }
    chunk.copy(out, j, from);
    return out;
  }
}

/** Whether the LF at `i` has no CR before it (a closure per chunk was garbage for every message). */
function bare(chunk: Buffer, i: number, crBefore: boolean): boolean {
  return i === 0 ? !crBefore : chunk[i - 1] !== CR;
}
