/**
 * The file name the lab gives a seeded message: the one a Dovecot delivery (LDA or LMTP) would
 * give it, `<secs>.M<usecs>P<pid>.<host>,S=<size>,W=<vsize>:2,`.
 *
 * Both sizes matter. Without `W=` (the size with every line end CRLF, what POP3's LIST and STAT
 * report) Dovecot reads every file of a fresh maildir to count its bare LFs at the first
 * listing; a real delivery writes it, so a lab without it makes the server look slower than it
 * is. And the name must hash well: Dovecot keeps its dovecot-uidlist records in a hash table
 * keyed by the name up to `:` (maildir_filename_base_hash, a 4-bit shift-and-fold hash). The
 * lab once added `Q<index>` after the pid; with the index close to the micro-seconds and a
 * 5- or 6-digit pid between them, the two digit runs sit 28 bits apart and cancel in the
 * fold, so 20,000 names fell into ~10,000 values, ~2,000 deep, and every POP3 session's
 * maildir sync spent seconds comparing names (a no-op `sync` of the bench took 0.4 s or 2.4 s
 * depending on the bench's pid). One varying number, as a delivery has, does not cancel.
 */

/** The size with every LF not preceded by CR counted twice, as Dovecot's message_get_*_size. */
export function virtualSize(bytes: Buffer): number {
  let bare = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) {
    if (i === 0 || bytes[i - 1] !== 0x0d) bare += 1;
  }
  return bytes.length + bare;
}

/**
 * The name of a message delivered at `stamp` micro-seconds since the epoch by process `pid`,
 * flags empty (`:2,`). Distinct stamps give distinct names; Dovecot orders new files by the
 * stamp (seconds, then micro-seconds), which is how the lab fixes the message order.
 */
export function deliveredName(stamp: number, pid: number, bytes: Buffer): string {
  const secs = Math.floor(stamp / 1_000_000);
  const usecs = stamp % 1_000_000;
  return `${secs}.M${usecs}P${pid}.popsync-lab,S=${bytes.length},W=${virtualSize(bytes)}:2,`;
}
