/**
 * Whether popsync may write terminal escapes (colour, spinner, redrawn bars) to stderr.
 *
 * NO_COLOR (https://no-color.org: any non-empty value) and --no-color both say no. Our only
 * colour is the spinner's, and the spinner and bars are drawn with escapes that move the
 * cursor: people set NO_COLOR because escapes show as garbage in their screen reader, terminal
 * recorder or log, so "no colour" here means the plain progress lines cron already gets.
 */
export function colorAllowed(env: NodeJS.ProcessEnv, colorFlag: boolean): boolean {
  if (!colorFlag) return false;
  const v = env.NO_COLOR;
  return v === undefined || v === '';
}
