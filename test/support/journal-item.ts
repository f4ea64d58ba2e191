/**
 * One message's intent as the journal tests record it: the same ten-byte INBOX copy in every
 * file that only needs some row to exist (the guard, the lock, -step, outcomes).
 */
import type { BeginAppend } from '../../src/journal/types.js';

export function intent(uidl: string): BeginAppend {
  return {
    uidl,
    size: 10,
    sha256: 'c'.repeat(64),
    messageId: null,
    folder: 'INBOX',
    destUidValidity: 7n,
    destUidNext: 1,
  };
}
