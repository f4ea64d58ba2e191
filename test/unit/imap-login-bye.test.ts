import { describe, expect, it } from 'vitest';
import { loginByeRefusal } from '../../src/imap/errors.js';

describe('a BYE that answers a login on popsync own connection', () => {
  it('names the credentials: a refused login with its code and words', () => {
    const e = loginByeRefusal('* BYE [AUTHENTICATIONFAILED] Invalid credentials') as Error & {
      serverResponseCode?: string;
    };
    expect(e.message).toBe('BYE [AUTHENTICATIONFAILED] Invalid credentials');
    expect(e.serverResponseCode).toBe('AUTHENTICATIONFAILED');
    expect(loginByeRefusal('* bye [authenticationfailed extra] x')?.message).toBe('BYE [AUTHENTICATIONFAILED] x');
  });

  it('a limit or no code is not a refusal', () => {
    expect(loginByeRefusal('* BYE [UNAVAILABLE] Too many connections')).toBeNull();
    expect(loginByeRefusal('* BYE Too many connections')).toBeNull();
    expect(loginByeRefusal('* BYE [] x')).toBeNull();
    expect(loginByeRefusal('* BYE [ AUTHENTICATIONFAILED] x')).toBeNull();
  });

  // The expression before this one took 1.3 s for 40,000 characters and grew with their square:
  // these lines would take minutes each. Ten seconds is a hundredfold margin on a loaded machine.
  it('reads a code whose bracket never closes in linear time', { timeout: 10_000 }, () => {
    expect(loginByeRefusal(`* BYE [${'A'.repeat(400_000)}`)).toBeNull();
    expect(loginByeRefusal(`* BYE [AUTHENTICATIONFAILED${' x'.repeat(200_000)}`)).toBeNull();
  });
});
