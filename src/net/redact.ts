/**
 * Keeps credentials out of everything a server says back. Some servers echo the failed command
 * line in their error text ("-ERR [AUTH] bad password secret for alice", a BAD quoting the
 * AUTHENTICATE line), and that text travels into error messages, the log file and reports.
 * Every server line read after credentials may have been sent goes through `redact` with the
 * forms sasl.ts secretForms lists (the password or access token, its base64, the base64 of each
 * initial response) before anyone else sees it.
 */

const REDACTED = '****';

export function redact(text: string, forms: readonly string[]): string {
  // Every POP3 status line comes through here (twice per message): the common case, no form
  // in the text, costs one search per form and no copy, sort, array or callback.
  let any = false;
  for (let i = 0; i < forms.length && !any; i++) any = forms[i] !== '' && text.includes(forms[i]!);
  if (!any) return text;
  const found = forms.filter((f) => f !== '' && text.includes(f));
  let out = text;
  // Longest first, so a form containing another is replaced whole.
  for (const f of found.sort((a, b) => b.length - a.length)) if (out.includes(f)) out = out.split(f).join(REDACTED);
  return out;
}
