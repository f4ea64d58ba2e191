/**
 * Everything popsync takes from imapflow beyond its documented ImapFlow API, in one file, so an
 * imapflow upgrade that moves any of it breaks here (test/unit/imapflow-adapter.test.ts pins
 * each piece) and nowhere else:
 *
 * - `lib/tools.js` and `lib/handler/imap-compiler.js`: the mailbox-name encoder, the flag and
 *   date formatters and the command compiler, so our own APPEND connection (pipeline.ts) names
 *   folders and writes commands exactly as imapflow's does.
 * - The `transport` option (public since 2.9): every socket imapflow opens comes from
 *   net/connect.ts, with the same TLS options, CA merge and SNI as POP3 and pipeline.ts.
 * - Its internal `authenticate()` step, replaced on our subclass so the login is the one
 *   login.ts decides and net/sasl.ts speaks (XOAUTH2, OAUTHBEARER, PLAIN with authzid), not a
 *   second implementation inside imapflow. It uses imapflow's `exec` (tagged command with an
 *   `onPlusTag` continuation handler), `write`, `run('LOGIN')` and `setAuthenticationState`.
 * - Its internal `run()`, wrapped to send one ID instead of two, and to open a mailbox without
 *   the LIST (and LSUB) imapflow asks first, through its internal `folders` cache (see the subclass).
 * - Its internal `compress()`, called only when the server offers COMPRESS=DEFLATE (node:zlib is
 *   loaded at first use; see the subclass).
 */

import type { Socket } from 'node:net';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import compiler from 'imapflow/lib/handler/imap-compiler.js';
import { encodePath, formatDateTime, formatFlag, normalizePath } from 'imapflow/lib/tools.js';
import { createSocket, createTlsUpgrade, type SocketTarget } from '../net/connect.js';
import type { EarlySocket } from './early-socket.js';
import type { ImapCredentials } from './login.js';
import { chooseLogin, mechanismFor, SaslConversation } from './login.js';
import { byeRefusingLogin, responseCodeOf } from './errors.js';
import type { ImapAuthMethod } from './types.js';

export { compiler, encodePath, formatDateTime, formatFlag, normalizePath };

/**
 * imapflow's transport: our sockets, with our TLS options, for the connection and STARTTLS. The
 * first connect takes `early`, the socket opened while imapflow loaded, when there is one. Each
 * socket it hands imapflow is also shown to `opened` (the sink lets them go at close).
 */
export function imapflowTransport(
  target: SocketTarget,
  early?: () => EarlySocket | undefined,
  opened: (socket: Socket) => void = () => undefined,
): NonNullable<ImapFlowOptions['transport']> {
  const shown = <T extends Socket>(s: T): T => {
    opened(s);
    return s;
  };
  return {
    connect: (o, onConnect) => shown(early?.()?.take(o.secure, onConnect) ?? createSocket(target, o.secure, onConnect)),
    upgrade: (socket, _o, onSecure) => shown(createTlsUpgrade(socket as Socket, target, onSecure)),
  };
}

/** What a login needs: the method asked for, and credentials fetched anew for this login. */
export interface LoginSource {
  auth: ImapAuthMethod;
  credentials(): Promise<ImapCredentials>;
  host: string;
  port: number;
  /**
   * Told this login's verdict: the sink's other connection, set up side by side, waits for it
   * before logging in, so a wrong password is refused once, not once per connection (servers
   * count failed logins against the account). Called once, with null for a login that passed.
   */
  verdict?: (failure: unknown) => void;
}

/** The parts of ImapFlow the login below relies on; all internal, all checked by the adapter test. */
interface ImapFlowInternals {
  state: number;
  states: { NOT_AUTHENTICATED: number; LOGOUT: number };
  capabilities: Map<string, unknown>;
  expectCapabilityUpdate: boolean;
  authenticated: string | boolean;
  exec(
    command: string,
    attributes: Array<{ type: string; value: string; sensitive?: boolean }>,
    options: { onPlusTag?: (resp: { attributes?: Array<{ type?: string; value?: unknown }> }) => Promise<void> },
  ): Promise<{ next?: () => void }>;
  write(chunk: string): void;
  run(command: string, ...args: unknown[]): Promise<unknown>;
  setAuthenticationState(): Promise<void>;
  /** Its handler of an untagged BYE (the parsed response), which sets byeReason from its text. */
  serverBye(parsed: unknown): Promise<void>;
  /** What LIST said of each mailbox, read only by SELECT/EXAMINE, which runs LIST on a miss. */
  folders: Map<string, { path: string }>;
}

const imapflowRun = (ImapFlow.prototype as unknown as ImapFlowInternals).run;
const imapflowServerBye = (ImapFlow.prototype as unknown as ImapFlowInternals).serverBye;

/** Logins refused by a BYE with a code that names the credentials (serverBye below), by session. */
const loginRefusals = new WeakMap<ImapFlow, Error>();

/**
 * The BYE that refused `client`'s login for its credentials ('BYE [AUTHENTICATIONFAILED] ...', an
 * error errors.ts maps as a refused login), or undefined: imapflow reports such a BYE as its
 * connection closed, which would read as the server turning the connection away.
 */
export function loginRefusalOf(client: ImapFlow): Error | undefined {
  return loginRefusals.get(client);
}

/**
 * An ImapFlow whose login is ours. imapflow calls `authenticate()` from its session start,
 * between STARTTLS (capabilities refreshed) and NAMESPACE; a failure thrown here rejects
 * connect() like its own would, and errors.ts maps both the same way.
 */
export function createImapFlow(options: ImapFlowOptions, login: LoginSource): ImapFlow {
  class PopsyncImapFlow extends ImapFlow {
    private identified = false;
    /** Our login is under way (a BYE then answers it). */
    private loggingIn = false;

    /**
     * imapflow's byeReason keeps a BYE's text and drops its [CODE]. A BYE that answers our login
     * with a code naming the credentials is kept (loginRefusalOf), as what ended the login: the
     * BYE is read before the close, which imapflow's connect() may reject with first.
     */
    serverBye(parsed: unknown): Promise<void> {
      const done = imapflowServerBye.call(this, parsed);
      const code = responseCodeOf({ response: parsed });
      const refused = this.loggingIn ? byeRefusingLogin(code, this.byeReason ?? '') : null;
      if (refused !== null) loginRefusals.set(this, refused);
      return done;
    }

    /**
     * imapflow's session start sends ID (RFC 2971) before the login and, when the answer names
     * fewer than two fields (Dovecot's names one), again after it: two round trips before the
     * session is usable. Only one ID is sent, after the login: some providers (NetEase's 163.com)
     * refuse mailbox access until the client identified itself in the authenticated session, and
     * nothing before the login needs it.
     */
    run(command: string, ...args: unknown[]): Promise<unknown> {
      const self = this as unknown as ImapFlowInternals;
      const verb = command.toUpperCase();
      if (verb === 'ID') {
        if (self.state === self.states.NOT_AUTHENTICATED || this.identified) return Promise.resolve(undefined);
        this.identified = true;
      }
      // imapflow's SELECT/EXAMINE first LISTs a mailbox it has not listed (and, for its
      // subscription flag, LSUBs it): two round trips before each check of the copies before DELE,
      // each adoption scan, each verify. What they fill in (delimiter, special use, subscribed) is
      // none of popsync's business, and a mailbox that is not there still fails at EXAMINE itself.
      if (verb === 'SELECT' && (typeof args[0] === 'string' || Array.isArray(args[0]))) {
        const path = normalizePath(this, args[0] as string | string[]);
        if (!self.folders.has(path)) self.folders.set(path, { path });
      }
      return imapflowRun.call(this, command, ...args);
    }

    /**
     * imapflow's session start calls compress(), which reads node:zlib (loaded at its first use,
     * lab/bundle.ts: ~1 ms) before its COMPRESS command asks whether the server offers it. Asked
     * here first, so a session without COMPRESS=DEFLATE never loads zlib.
     */
    compress(): Promise<void> {
      if (!(this as unknown as ImapFlowInternals).capabilities.has('COMPRESS=DEFLATE')) return Promise.resolve();
      return (ImapFlow.prototype as unknown as { compress(): Promise<void> }).compress.call(this);
    }

    async authenticate(): Promise<boolean> {
      const self = this as unknown as ImapFlowInternals;
      if (self.state === self.states.LOGOUT) throw authError('Already logged out');
      // PREAUTH: nothing to do.
      if (self.state !== self.states.NOT_AUTHENTICATED) {
        login.verdict?.(null);
        return true;
      }
      this.loggingIn = true;
      try {
        await this.logIn(self);
      } catch (err) {
        // A BYE for the login that names the credentials ([AUTHENTICATIONFAILED]) refused them as
        // a NO would; imapflow reports it as a closed connection, which would be tried again.
        const refused = loginRefusals.get(this) ?? err;
        login.verdict?.(refused);
        throw refused;
      } finally {
        this.loggingIn = false;
      }
      login.verdict?.(null);
      return true;
    }

    private async logIn(self: ImapFlowInternals): Promise<void> {
      self.expectCapabilityUpdate = true;
      const creds = await login.credentials();
      const caps = new Set([...self.capabilities.keys()].map((c) => c.toUpperCase()));
      const step = chooseLogin(login.auth, caps, { token: creds.token, admin: creds.admin !== undefined });
      if (step.kind === 'login-command') {
        self.authenticated = (await self.run('LOGIN', creds.user, creds.secret)) as string | boolean;
      } else {
        const sasl = new SaslConversation(mechanismFor(step.mechanism, creds, login), caps.has('SASL-IR'));
        try {
          const response = await self.exec(
            'AUTHENTICATE',
            [
              { type: 'ATOM', value: step.mechanism },
              ...(sasl.argument === undefined ? [] : [{ type: 'ATOM', value: sasl.argument, sensitive: true }]),
            ],
            {
              onPlusTag: async (resp) => {
                const text = resp.attributes?.[0]?.value;
                self.write(sasl.answer(typeof text === 'string' ? text : ''));
              },
            },
          );
          response.next?.();
        } catch (err) {
          // A tagged NO/BAD to AUTHENTICATE is the server refusing the credentials.
          const e = err as { responseStatus?: string; authenticationFailed?: boolean };
          if (e.responseStatus === 'NO' || e.responseStatus === 'BAD') e.authenticationFailed = true;
          throw err;
        }
        self.authenticated = creds.user;
      }
      if (!self.authenticated) throw authError('Authentication failed');
      await self.setAuthenticationState();
    }
  }
  return new PopsyncImapFlow(options);
}

function authError(message: string): Error {
  return Object.assign(new Error(message), { authenticationFailed: true });
}
