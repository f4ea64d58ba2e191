/**
 * The bench's copy-phase reader (lab/bench-phase.ts) on chunks as a relay sees them: a reply
 * split across chunks, replies on two connections, lines that answer something else.
 */
import { describe, expect, it } from 'vitest';
import { CopyPhase } from '../../lab/bench-phase.js';

describe('bench copy phase', () => {
  it('reads replies split across chunks and ignores what does not answer an APPEND', () => {
    const phase = new CopyPhase(15);
    const up = (s: string, at: number): void => phase.pop3(1, 'up', Buffer.from(s), at);
    const down = (conn: number, s: string, at: number): void => phase.imap(conn, 'down', Buffer.from(s), at);
    up('STAT\r\nLIST\r\nUIDL\r\n', 100);
    // Nothing copied yet: no phase.
    down(1, 'A1 OK Status completed.\r\n', 105);
    expect(phase.ms).toBeNull();
    up('RETR 1\r\nRETR 2\r\n', 110);
    up('RETR 3\r\n', 120);
    down(1, '* 3 EXISTS\r\nP1 OK [APPENDUID 7 1:2] Ap', 200);
    down(2, 'P1 OK [APPENDUID 7 3] Append completed.\r\n', 250);
    down(1, 'pend completed.\r\nZ OK Logout completed.\r\n', 300);
    // The client's own lines never count as replies.
    phase.imap(1, 'up', Buffer.from('P9 OK [APPENDUID 7 4] Append completed.\r\n'), 400);
    expect(phase.appendOks).toBe(2);
    expect(phase.confirmed).toBe(3);
    // From the first RETR (110) to the last APPEND reply reaching popsync (300 + 15).
    expect(phase.ms).toBe(205);
  });
});
