/**
 * The CAPABILITY lists providers publish after login, for labs that make Dovecot look like
 * them (StartOptions.imapCapability). AUTH= entries are left out: they are login-time only and
 * the lab's Dovecot adds its own mechanisms before login. Sources: the providers' IMAP greetings
 * as documented and widely reported (2026); /work/shared/design/providers.md.
 */

/**
 * Gmail: LITERAL- (not LITERAL+), UIDPLUS, APPENDLIMIT 34 MiB, SPECIAL-USE; no MULTIAPPEND.
 * Gmail also lists X-GM-EXT-1, left out here: imapflow then adds X-GM-MSGID to every FETCH,
 * which Dovecot answers with BAD. popsync uses none of Gmail's extensions.
 */
export const GMAIL_IMAP_CAPABILITY =
  'IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN UIDPLUS COMPRESS=DEFLATE ENABLE MOVE ' +
  'CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584';

/** Microsoft 365 / Outlook.com: LITERAL+ and UIDPLUS, no MULTIAPPEND. */
export const MICROSOFT_IMAP_CAPABILITY =
  'IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+';
