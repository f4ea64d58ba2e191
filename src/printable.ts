/**
 * Text from outside made safe to print: its own module, below the reporters, because the journal
 * (a lower layer) prints a path in its hints the way the CLI will show it.
 */

/**
 * Server text and UIDLs are untrusted: a hostile server could send ANSI escapes that rewrite
 * the user's terminal or forge report lines, and bidi overrides can make text read backwards.
 * Those characters become visible \xNN / \uNNNN escapes; tabs stay.
 */
export function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return s.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
