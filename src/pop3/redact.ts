/**
 * Keeps credentials out of everything a POP3 server says back. Some servers echo the failed
 * command line in their -ERR text ("-ERR [AUTH] bad password secret for alice"), and that text
 * travels into error messages, the log file and reports. connection.ts passes every server line
 * read after credentials may have been sent through `redact` before anyone else sees it.
 *
 * The forms are those popsync puts on the wire: the password itself, its base64 (AUTH LOGIN),
 * and the base64 of the AUTH PLAIN message.
 */

export const REDACTED = '****';

export function secretForms(user: string, password: string): string[] {
  if (password === '') return [];
  const forms = [
    password,
    Buffer.from(password, 'utf8').toString('base64'),
    Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64'),
  ];
  // Longest first, so a form containing another is replaced whole.
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

export function redact(text: string, forms: readonly string[]): string {
  let out = text;
  for (const f of forms) if (out.includes(f)) out = out.split(f).join(REDACTED);
  return out;
}
