/**
 * The folder-name template language: literal UTF-8 text with `{name}` placeholders filled from
 * the message. Parsed once when the config is loaded (an unknown name is a config error, not
 * a surprise folder called "{yaer}"), rendered per message.
 *
 * Filled-in values are sanitised because they come from strangers' headers: '/' would add a
 * folder level, '.' is the hierarchy delimiter on Maildir++ and Courier servers, and '*', '%'
 * and control characters are LIST wildcards or invisible. Each becomes '_'. The literal text
 * the user wrote is kept as is.
 */

const TEMPLATE_NAMES = [
  'year',
  'month',
  'day',
  'list-id',
  'from',
  'from-local',
  'from-domain',
  'to',
  'to-local',
  'to-domain',
] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

export type TemplatePart = string | { name: TemplateName };

export type ParsedTemplate = { ok: true; parts: TemplatePart[] } | { ok: false; error: string };

export function parseTemplate(text: string): ParsedTemplate {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{', i);
    const close = text.indexOf('}', i);
    if (close !== -1 && (open === -1 || close < open))
      return { ok: false, error: `unmatched "}" at position ${close + 1}` };
    if (open === -1) {
      parts.push(text.slice(i));
      break;
    }
    if (open > i) parts.push(text.slice(i, open));
    const end = text.indexOf('}', open);
    if (end === -1) return { ok: false, error: `unclosed "{" at position ${open + 1}` };
    const name = text.slice(open + 1, end).trim();
    if (!(TEMPLATE_NAMES as readonly string[]).includes(name)) {
      return {
        ok: false,
        error: `unknown template "{${name}}"; known: ${TEMPLATE_NAMES.map((n) => `{${n}}`).join(', ')}`,
      };
    }
    parts.push({ name: name as TemplateName });
    i = end + 1;
  }
  return { ok: true, parts };
}

function sanitiseValue(v: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not reach a folder name
  return v.replace(/[/.\\*%\x00-\x1f\x7f]/g, '_').trim();
}

/** The folder name, or null when a placeholder has no value for this message (the rule then does not apply). */
export function renderTemplate(parts: TemplatePart[], value: (name: TemplateName) => string | null): string | null {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    const v = value(p.name);
    const clean = v === null ? '' : sanitiseValue(v);
    if (clean === '') return null;
    out += clean;
  }
  return out;
}
