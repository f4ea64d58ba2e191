/**
 * A tiny scripted IMAP server for protocol and engine fault tests.
 *
 * It speaks just enough IMAP4rev1 for imapflow to connect (greeting, CAPABILITY, LOGIN, LIST
 * "" "" for the delimiter), and for ImapSink to work: LIST/LSUB, STATUS, CREATE, SUBSCRIBE,
 * SELECT/EXAMINE, CLOSE/UNSELECT, UID FETCH (UID, RFC822.SIZE, FLAGS, INTERNALDATE, ENVELOPE with
 * only Message-ID, BODY[]/BODY.PEEK[] also partial <o.n>, BODY.PEEK[HEADER]), NOOP, LOGOUT and
 * APPEND with synchronizing and LITERAL+ literals. Everything else gets BAD. It is not a correct
 * IMAP server; it is a stage on which tests can make a server misbehave at exactly one point:
 *
 *   const imap = await startFakeImap({
 *     onAppend: (a) => (a.n === 2 ? { kind: 'no', text: '[OVERQUOTA] Quota exceeded' } : undefined),
 *   });
 *
 * - `onAppend` answers the n-th APPEND (counted across connections, from 1) after its literal
 *   has been read: `{kind:'ok', appendUid:false}` omits APPENDUID; `{kind:'ok', store:false}`
 *   answers OK (with an APPENDUID) but stores nothing, like a broken server; `{kind:'ok',
 *   after}` holds the reply until the promise settles; `{kind:'drop'}` stores the message and
 *   closes the socket before the tagged reply (the duplicate window; `store:false` loses it
 *   instead); `{kind:'hang'}` never answers.
 * - `onCommand` can replace the answer to any other command (e.g. CREATE answered with a bare
 *   NO, LOGIN with NO [UNAVAILABLE] or `{kind:'bye'}`). Return undefined to get the normal behaviour.
 * - `greeting` can turn the n-th connection away before anything else (a BYE greeting, a close).
 * - MULTIAPPEND (RFC 3502) when listed in `capabilities`: `onAppend` is asked for each message;
 *   if it refuses any, the whole command is refused and none is stored (atomic, as the RFC
 *   demands); `drop`/`hang` for any applies to the command. APPENDUID names a UID range.
 * - LITERAL- (RFC 7888) without LITERAL+ in `capabilities`: a `{n+}` literal over 4096 octets
 *   is answered `BAD [TOOBIG]` and the connection closed, as Gmail may.
 * - `received` records every command line (literals shown as {n bytes}, LOGIN password masked),
 *   `appends` every APPEND the server read, and `mailboxes` the stored state, for assertions.
 *
 * Mailbox names are stored as they travel on the wire (modified UTF-7 is not decoded).
 */

import net from 'node:net';

interface FakeMessage {
  uid: number;
  flags: string[];
  internalDate: string;
  body: Buffer;
}

interface FakeMailbox {
  name: string;
  uidValidity: number;
  uidNext: number;
  messages: FakeMessage[];
  subscribed: boolean;
}

interface FakeAppend {
  /** 1-based count of APPENDs this server has read, across connections. */
  n: number;
  mailbox: string;
  flags: string[];
  date: string | null;
  body: Buffer;
}

type FakeReply =
  | { kind: 'ok' | 'no' | 'bad'; text?: string }
  | { kind: 'bye'; text: string } // an untagged BYE, then the socket closed
  | { kind: 'drop' } // close the socket without answering
  | { kind: 'hang' } // never answer
  /** No answer: `piece` over and over as the socket drains, up to `max` bytes (see flood()). */
  | { kind: 'flood'; piece: Buffer; max: number; sent: (bytes: number) => void };

type FakeAppendReply =
  /** appendUid: false omits APPENDUID; a number is announced instead of the UID really given (a lying server). */
  | { kind: 'ok'; appendUid?: boolean | number; store?: boolean; after?: Promise<unknown> }
  | { kind: 'no' | 'bad'; text: string }
  | { kind: 'drop'; store?: boolean }
  | { kind: 'hang' }
  /**
   * No reply: `piece` over and over, as fast as the socket takes it (waiting for it to drain),
   * until `max` bytes or the socket closed; `sent` hears each write's bytes.
   */
  | { kind: 'flood'; piece: Buffer; max: number; sent: (bytes: number) => void };

interface FakeCommand {
  tag: string;
  name: string;
  args: Token[];
}

export interface FakeImapOptions {
  /** Default: IMAP4rev1 UIDPLUS LITERAL+ */
  capabilities?: string[];
  /** Default: { alice: 'secret' } */
  users?: Record<string, string>;
  /**
   * OAuth2 access tokens the server accepts, user -> token (XOAUTH2, OAUTHBEARER); a function
   * is asked each time, so a test can expire tokens. Advertise AUTH=XOAUTH2 / AUTH=OAUTHBEARER
   * (and SASL-IR) in `capabilities` for clients to use them.
   */
  tokens?: Record<string, string> | ((user: string, token: string) => boolean);
  /** Default: '/' */
  delimiter?: string;
  /**
   * The personal namespace's prefix NAMESPACE announces (default ""). One with CR, LF or NUL goes
   * as a literal, as a hostile server may send one.
   */
  namespacePrefix?: string;
  /** Mailboxes to create besides INBOX (wire names). */
  mailboxes?: string[];
  /**
   * Mailboxes created with a SPECIAL-USE attribute in their LIST line (wire name -> e.g. '\\Junk').
   * A name with CR, LF or NUL goes as a literal, as a hostile server may send one.
   */
  specialUse?: Record<string, string>;
  onAppend?: (append: FakeAppend) => FakeAppendReply | undefined;
  onCommand?: (cmd: FakeCommand) => FakeReply | undefined;
  /**
   * Hold each connection's APPEND replies until it has read this many APPENDs (the messages of
   * a MULTIAPPEND each count), then send them in order: a client that waits for each reply
   * before the next APPEND (no pipelining) stalls.
   */
  holdAppendReplies?: number;
  /**
   * Asked for each synchronising literal before its '+': a text refuses it with a tagged NO
   * in place of the '+' (the command ends there, as a server's size check does).
   */
  refuseLiteral?: (size: number) => string | undefined;
  /**
   * Which APPEND flags the server stores (default all); a server without `\*` in PERMANENTFLAGS
   * drops keywords silently.
   */
  keepFlag?: (flag: string) => boolean;
  /**
   * The n-th connection's greeting (from 1, in the order accepted): a line sent in place of the
   * normal one and the socket closed (`* BYE Too many connections`), or 'close' to close without
   * a word, once `after` (if given) has settled. Undefined greets as usual.
   */
  greeting?: (connection: number) => { line: string; after?: Promise<unknown> } | undefined;
  /**
   * Sessions logged in at once at most, as Dovecot's mail_max_userip_connections: a LOGIN beyond
   * it is answered `NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded`. A
   * session stops counting when its socket has closed.
   */
  maxLoggedIn?: number;
  /**
   * Connections open at once at most, enforced at accept: one beyond it is closed before its
   * greeting without a word, as a per-address limit in front of the server does (couriertcpd
   * -maxperip, xinetd per_source, haproxy's src_conn_cur). A connection stops counting when its
   * socket has closed; one closed this way never counts. `greeting` is asked first.
   */
  maxOpen?: number;
  /** The line `maxOpen` closes a connection with (`* BYE Too many connections`); none by default. */
  overMaxOpen?: string;
  /** Told of each connection closed at accept for `maxOpen`, with its number (from 1). */
  onClosedAtAccept?: (connection: number) => void;
}

export interface FakeImap {
  host: string;
  port: number;
  received: string[];
  appends: FakeAppend[];
  /** Every literal the server read, in order: its size and whether it came as {n+}. */
  literals: Array<{ size: number; nonSync: boolean }>;
  /** The message count of every APPEND carrying more than one message (MULTIAPPEND), in order. */
  multiAppends: number[];
  mailboxes: Map<string, FakeMailbox>;
  /** Connections accepted so far. */
  connections: number;
  /** Every AUTHENTICATE that succeeded: the mechanism, the user, the authzid PLAIN named. */
  logins: Array<{ mechanism: string; user: string; authzid?: string }>;
  close(): Promise<void>;
}

/** A parsed argument: atom or quoted string, literal bytes, or a parenthesized list. */
type Token = string | Buffer | Token[];

export const FAKE_USER = 'alice';
export const FAKE_PASSWORD = 'secret';

export async function startFakeImap(options: FakeImapOptions = {}): Promise<FakeImap> {
  const caps = options.capabilities ?? ['IMAP4rev1', 'UIDPLUS', 'LITERAL+'];
  const users = options.users ?? { [FAKE_USER]: FAKE_PASSWORD };
  const delim = options.delimiter ?? '/';
  const mailboxes = new Map<string, FakeMailbox>();
  let nextValidity = 1000;
  const addMailbox = (name: string): FakeMailbox => {
    const mb: FakeMailbox = { name, uidValidity: nextValidity++, uidNext: 1, messages: [], subscribed: true };
    mailboxes.set(name, mb);
    return mb;
  };
  addMailbox('INBOX');
  for (const m of options.mailboxes ?? []) addMailbox(m);
  for (const m of Object.keys(options.specialUse ?? {})) addMailbox(m);

  const sockets = new Set<net.Socket>();
  const loggedIn = { n: 0 };
  let open = 0;
  const state: FakeImap = {
    host: '127.0.0.1',
    port: 0,
    received: [],
    appends: [],
    multiAppends: [],
    literals: [],
    mailboxes,
    connections: 0,
    logins: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const instead = options.greeting?.(state.connections);
    if (instead !== undefined) {
      void (instead.after ?? Promise.resolve()).then(() => {
        if (instead.line === 'close') socket.end();
        else socket.end(`${instead.line}\r\n`);
      });
      return;
    }
    if (open >= (options.maxOpen ?? Infinity)) {
      options.onClosedAtAccept?.(state.connections);
      if (options.overMaxOpen === undefined) socket.end();
      else socket.end(`${options.overMaxOpen}\r\n`);
      return;
    }
    open++;
    socket.on('close', () => open--);
    const session = new Session(socket, state, { loggedIn, caps, users, delim, addMailbox, options });
    socket.on('close', () => {
      if (session.loggedIn) loggedIn.n--;
    });
    socket.write(`* OK [CAPABILITY ${caps.join(' ')}] fake IMAP ready\r\n`);
    socket.on('data', (chunk) => session.feed(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  return state;
}

interface SessionConfig {
  /** Sessions logged in now (maxLoggedIn). */
  loggedIn: { n: number };
  caps: string[];
  users: Record<string, string>;
  delim: string;
  addMailbox: (name: string) => FakeMailbox;
  options: FakeImapOptions;
}

class Session {
  private buf = Buffer.alloc(0);
  /** Text and literal pieces of the command being read. */
  private pieces: Array<string | Buffer> = [];
  private literalNeed = -1;
  private authed = false;
  /** Counted among the sessions logged in (maxLoggedIn): by LOGIN, the only login limited. */
  loggedIn = false;
  private selected: FakeMailbox | null = null;
  private gone = false;
  private appendsRead = 0;
  private held: string[] | null = null;
  /** An AUTHENTICATE waiting for the client's next line (no SASL-IR, or after an error challenge). */
  private sasl: { tag: string; mechanism: string; failed: boolean } | null = null;

  constructor(
    private readonly socket: net.Socket,
    private readonly fake: FakeImap,
    private readonly cfg: SessionConfig,
  ) {}

  feed(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (!this.gone) {
      if (this.literalNeed >= 0) {
        if (this.buf.length < this.literalNeed) return;
        this.pieces.push(this.buf.subarray(0, this.literalNeed));
        this.buf = this.buf.subarray(this.literalNeed);
        this.literalNeed = -1;
        continue;
      }
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buf.subarray(0, eol).toString('utf8');
      this.buf = this.buf.subarray(eol + 2);
      if (this.sasl) {
        this.saslResponse(line);
        continue;
      }
      const lit = /\{(\d+)(\+?)\}$/.exec(line);
      const minusOnly = this.cfg.caps.includes('LITERAL-') && !this.cfg.caps.includes('LITERAL+');
      if (lit?.[2] && minusOnly && Number(lit[1]) > 4096) {
        this.fake.received.push(`${line} (refused: over LITERAL-'s 4096)`);
        this.write(`${/^\S+/.exec(line)?.[0] ?? '*'} BAD [TOOBIG] Non-synchronizing literal over 4096 octets`);
        this.drop();
        return;
      }
      const refused = lit && !lit[2] ? this.cfg.options.refuseLiteral?.(Number(lit[1])) : undefined;
      if (refused !== undefined) {
        const tag = typeof this.pieces[0] === 'string' ? this.pieces[0] : line;
        this.fake.received.push(`${line} (refused before the literal)`);
        this.write(`${/^\S+/.exec(tag)?.[0] ?? '*'} NO ${refused}`);
        this.pieces = [];
        continue;
      }
      if (lit) {
        this.fake.literals.push({ size: Number(lit[1]), nonSync: lit[2] === '+' });
        this.pieces.push(line.slice(0, lit.index));
        this.literalNeed = Number(lit[1]);
        if (!lit[2]) this.write('+ Ready for literal data');
        continue;
      }
      this.pieces.push(line);
      const pieces = this.pieces;
      this.pieces = [];
      this.command(pieces);
    }
  }

  private write(line: string | Buffer): void {
    if (!this.gone) this.socket.write(typeof line === 'string' ? line + '\r\n' : line);
  }

  private drop(): void {
    this.gone = true;
    this.socket.destroy();
  }

  private command(pieces: Array<string | Buffer>): void {
    const tokens = tokenize(pieces);
    const tag = typeof tokens[0] === 'string' ? tokens[0] : '*';
    let name = typeof tokens[1] === 'string' ? tokens[1].toUpperCase() : '';
    let args = tokens.slice(2);
    if (name === 'UID' && typeof args[0] === 'string') {
      name = `UID ${args[0].toUpperCase()}`;
      args = args.slice(1);
    }
    this.fake.received.push(describe(pieces, name));
    const reply = name === 'APPEND' ? undefined : this.cfg.options.onCommand?.({ tag, name, args });
    if (reply) {
      this.scripted(tag, name, reply);
      return;
    }
    try {
      this.handle(tag, name, args);
    } catch (err) {
      this.write(`${tag} BAD ${(err as Error).message}`);
    }
  }

  /** One client line of an AUTHENTICATE exchange (the initial response, or an answer). */
  private saslResponse(line: string): void {
    const sasl = this.sasl!;
    if (line === '*') {
      this.sasl = null;
      this.write(`${sasl.tag} BAD AUTHENTICATE cancelled`);
      return;
    }
    if (sasl.failed) {
      // RFC 7628 §3.2.3: after the error challenge the client's (dummy) answer ends the exchange.
      this.sasl = null;
      this.write(`${sasl.tag} NO [AUTHENTICATIONFAILED] Authentication failed.`);
      return;
    }
    const text = Buffer.from(line, 'base64').toString('utf8');
    let user = '';
    let ok = false;
    let authzid: string | undefined;
    if (sasl.mechanism === 'PLAIN') {
      const [z = '', c = '', p = ''] = text.split('\0');
      user = c;
      authzid = z || undefined;
      ok = this.cfg.users[c] !== undefined && this.cfg.users[c] === p;
    } else if (sasl.mechanism === 'XOAUTH2' || sasl.mechanism === 'OAUTHBEARER') {
      const fields = new Map(
        text
          .split('\x01')
          .filter((f) => f.includes('='))
          .map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] as const),
      );
      user = sasl.mechanism === 'XOAUTH2' ? (fields.get('user') ?? '') : (/^n,a=([^,]*),/.exec(text)?.[1] ?? '');
      const token = /^Bearer (.+)$/.exec(fields.get('auth') ?? '')?.[1] ?? '';
      const tokens = this.cfg.options.tokens;
      ok = typeof tokens === 'function' ? tokens(user, token) : tokens?.[user] !== undefined && tokens[user] === token;
      if (!ok) {
        sasl.failed = true;
        const json = JSON.stringify({ status: 'invalid_token', schemes: 'bearer', scope: 'mail' });
        this.write(`+ ${Buffer.from(json).toString('base64')}`);
        return;
      }
    }
    this.sasl = null;
    if (!ok) {
      this.write(`${sasl.tag} NO [AUTHENTICATIONFAILED] Authentication failed.`);
      return;
    }
    this.authed = true;
    this.fake.logins.push({ mechanism: sasl.mechanism, user, ...(authzid ? { authzid } : {}) });
    this.write(`${sasl.tag} OK [CAPABILITY ${this.cfg.caps.join(' ')}] Logged in`);
  }

  private scripted(tag: string, name: string, reply: FakeReply): void {
    if (reply.kind === 'drop') {
      this.drop();
      return;
    }
    if (reply.kind === 'hang') return;
    if (reply.kind === 'flood') {
      this.flood(reply);
      return;
    }
    if (reply.kind === 'bye') {
      this.write(`* BYE ${reply.text}`);
      this.socket.end();
      this.gone = true;
      return;
    }
    this.write(`${tag} ${reply.kind.toUpperCase()} ${reply.text ?? `${name} scripted`}`);
  }

  private mailbox(name: Token | undefined): FakeMailbox | undefined {
    const n = str(name);
    return this.fake.mailboxes.get(n.toUpperCase() === 'INBOX' ? 'INBOX' : n);
  }

  private handle(tag: string, name: string, args: Token[]): void {
    const ok = (text = `${name} completed`): void => this.write(`${tag} OK ${text}`);
    if (!this.authed && !['CAPABILITY', 'NOOP', 'LOGOUT', 'LOGIN', 'ID', 'AUTHENTICATE'].includes(name)) {
      this.write(`${tag} BAD not authenticated`);
      return;
    }
    switch (name) {
      case 'CAPABILITY':
        this.write(`* CAPABILITY ${this.cfg.caps.join(' ')}`);
        ok();
        return;
      case 'NOOP':
        ok();
        return;
      case 'LOGOUT':
        this.write('* BYE logging out');
        ok();
        this.gone = true;
        this.socket.end();
        return;
      case 'LOGIN': {
        const [user, pass] = [str(args[0]), str(args[1])];
        if (this.cfg.users[user] !== undefined && this.cfg.users[user] === pass) {
          if (this.cfg.loggedIn.n >= (this.cfg.options.maxLoggedIn ?? Infinity)) {
            this.write(`${tag} NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded`);
            return;
          }
          this.authed = true;
          this.loggedIn = true;
          this.cfg.loggedIn.n++;
          ok(`[CAPABILITY ${this.cfg.caps.join(' ')}] Logged in`);
          return;
        }
        this.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.`);
        return;
      }
      case 'AUTHENTICATE': {
        const mechanism = str(args[0]).toUpperCase();
        if (!this.cfg.caps.includes(`AUTH=${mechanism}`)) {
          this.write(`${tag} NO unsupported mechanism`);
          return;
        }
        this.sasl = { tag, mechanism, failed: false };
        if (args[1] === undefined) {
          this.write('+ ');
          return;
        }
        this.saslResponse(str(args[1]));
        return;
      }
      case 'ID':
        this.write('* ID NIL');
        ok();
        return;
      case 'NAMESPACE':
        this.write(
          `* NAMESPACE ((${wireString(this.cfg.options.namespacePrefix ?? '')} ${quote(this.cfg.delim)})) NIL NIL`,
        );
        ok();
        return;
      case 'LIST':
      case 'LSUB': {
        const pattern = str(args[1]);
        if (pattern === '') {
          this.write(`* LIST (\\Noselect) ${quote(this.cfg.delim)} ""`);
          ok();
          return;
        }
        const re = patternRegex(pattern, this.cfg.delim);
        for (const mb of this.fake.mailboxes.values()) {
          if (!re.test(mb.name) || (name === 'LSUB' && !mb.subscribed)) continue;
          const attrs = [mb.name === 'INBOX' ? '' : '\\HasNoChildren', this.cfg.options.specialUse?.[mb.name] ?? ''];
          const wireName = wireString(mb.name);
          this.write(`* ${name} (${attrs.filter(Boolean).join(' ')}) ${quote(this.cfg.delim)} ${wireName}`);
        }
        ok();
        return;
      }
      case 'STATUS': {
        const mb = this.mailbox(args[0]);
        if (!mb) {
          this.write(`${tag} NO [NONEXISTENT] Mailbox doesn't exist: ${str(args[0])}`);
          return;
        }
        this.write(
          `* STATUS ${quote(mb.name)} (MESSAGES ${mb.messages.length} UIDNEXT ${mb.uidNext} UIDVALIDITY ` +
            `${mb.uidValidity})`,
        );
        ok();
        return;
      }
      case 'CREATE': {
        if (this.mailbox(args[0])) {
          this.write(`${tag} NO [ALREADYEXISTS] Mailbox already exists`);
          return;
        }
        this.cfg.addMailbox(str(args[0]));
        ok();
        return;
      }
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE': {
        const mb = this.mailbox(args[0]);
        if (mb) mb.subscribed = name === 'SUBSCRIBE';
        ok();
        return;
      }
      case 'SELECT':
      case 'EXAMINE': {
        const mb = this.mailbox(args[0]);
        if (!mb) {
          this.write(`${tag} NO [NONEXISTENT] Mailbox doesn't exist`);
          return;
        }
        this.selected = mb;
        this.write('* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)');
        this.write('* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted');
        this.write(`* ${mb.messages.length} EXISTS`);
        this.write('* 0 RECENT');
        this.write(`* OK [UIDVALIDITY ${mb.uidValidity}] UIDs valid`);
        this.write(`* OK [UIDNEXT ${mb.uidNext}] Predicted next UID`);
        ok(`[${name === 'SELECT' ? 'READ-WRITE' : 'READ-ONLY'}] ${name} completed`);
        return;
      }
      case 'CLOSE':
      case 'UNSELECT':
        this.selected = null;
        ok();
        return;
      case 'UID FETCH':
        this.uidFetch(tag, args);
        return;
      case 'APPEND':
        this.append(tag, args);
        return;
      default:
        this.write(`${tag} BAD unknown command ${name}`);
        return;
    }
  }

  private uidFetch(tag: string, args: Token[]): void {
    const mb = this.selected;
    if (!mb) {
      this.write(`${tag} BAD no mailbox selected`);
      return;
    }
    const uids = mb.messages.map((m) => m.uid);
    const max = uids.length ? Math.max(...uids) : 0;
    const wanted = new Set<number>();
    for (const part of str(args[0]).split(',')) {
      const [a, b = a] = part.split(':').map((x) => (x === '*' ? max : Number(x)));
      // As in real servers, "N:*" with N above every UID still matches the highest one.
      const [lo, hi] = [Math.min(a!, b!), Math.max(a!, b!)];
      for (const u of uids) if (u >= lo && u <= hi) wanted.add(u);
    }
    const items = flatten(args[1]).map((t) => t.toUpperCase());
    mb.messages.forEach((m, i) => {
      if (!wanted.has(m.uid)) return;
      const out: Array<string | Buffer> = [`* ${i + 1} FETCH (UID ${m.uid}`];
      for (const item of items) {
        if (item === 'RFC822.SIZE') out.push(` RFC822.SIZE ${m.body.length}`);
        else if (item === 'FLAGS') out.push(` FLAGS (${m.flags.join(' ')})`);
        else if (item === 'INTERNALDATE') out.push(` INTERNALDATE ${quote(m.internalDate)}`);
        else if (item === 'ENVELOPE') {
          const id = messageIdOf(m.body);
          out.push(` ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL ${id ? quote(id) : 'NIL'})`);
        } else if (item.startsWith('BODY[]') || item.startsWith('BODY.PEEK[]')) {
          const partial = /<(\d+)\.(\d+)>$/.exec(item);
          const start = partial ? Number(partial[1]) : 0;
          const part = partial ? m.body.subarray(start, start + Number(partial[2])) : m.body;
          out.push(` BODY[]${partial ? `<${start}>` : ''} {${part.length}}\r\n`, part);
          if (item.startsWith('BODY[]') && !m.flags.includes('\\Seen')) m.flags.push('\\Seen');
        } else if (item === 'BODY.PEEK[HEADER]' || item === 'BODY[HEADER]') {
          const end = m.body.indexOf('\r\n\r\n');
          const head = end < 0 ? m.body : m.body.subarray(0, end + 4);
          out.push(` BODY[HEADER] {${head.length}}\r\n`, head);
        }
      }
      out.push(')\r\n');
      this.write(Buffer.concat(out.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
    });
    this.write(`${tag} OK UID FETCH completed`);
  }

  private append(tag: string, args: Token[]): void {
    const messages = appendMessages(args.slice(1));
    if (messages === null) {
      this.write(`${tag} BAD APPEND needs a literal per message`);
      return;
    }
    if (messages.length > 1) {
      this.multiAppend(tag, args[0], messages);
      return;
    }
    const body = args[args.length - 1];
    if (!Buffer.isBuffer(body)) {
      this.write(`${tag} BAD APPEND needs a literal`);
      return;
    }
    const flags = Array.isArray(args[1]) ? flatten(args[1]) : [];
    const dateTok = args.find((a, i) => i > 0 && i < args.length - 1 && typeof a === 'string');
    const append: FakeAppend = {
      n: this.fake.appends.length + 1,
      mailbox: str(args[0]),
      flags,
      date: typeof dateTok === 'string' ? dateTok : null,
      body: Buffer.from(body),
    };
    this.fake.appends.push(append);
    this.appendsRead++;
    const hold = this.cfg.options.holdAppendReplies;
    if (hold !== undefined && this.held === null && this.appendsRead === 1) this.held = [];
    const mb = this.mailbox(args[0]);
    const reply: FakeAppendReply = this.cfg.options.onAppend?.(append) ?? { kind: 'ok' };
    if (reply.kind === 'hang') return;
    if (reply.kind === 'flood') {
      this.flood(reply);
      return;
    }
    if (reply.kind === 'no' || reply.kind === 'bad') {
      this.appendReply(`${tag} ${reply.kind.toUpperCase()} ${reply.text}`);
      return;
    }
    if (!mb) {
      this.appendReply(`${tag} NO [TRYCREATE] Mailbox doesn't exist`);
      return;
    }
    if (reply.kind === 'drop' && reply.store === false) {
      this.drop();
      return;
    }
    const uid = mb.uidNext++;
    const kept = this.cfg.options.keepFlag ? flags.filter(this.cfg.options.keepFlag) : flags;
    if (!(reply.kind === 'ok' && reply.store === false))
      mb.messages.push({
        uid,
        flags: kept,
        internalDate: append.date ?? '01-Jan-2020 00:00:00 +0000',
        body: append.body,
      });
    if (reply.kind === 'drop') {
      this.drop();
      return;
    }
    const withUid = !(reply.kind === 'ok' && reply.appendUid === false) && this.cfg.caps.includes('UIDPLUS');
    const announced = reply.kind === 'ok' && typeof reply.appendUid === 'number' ? reply.appendUid : uid;
    const line = `${tag} OK ${withUid ? `[APPENDUID ${mb.uidValidity} ${announced}] ` : ''}Append completed`;
    if (reply.kind === 'ok' && reply.after) {
      void reply.after.finally(() => this.appendReply(line));
      return;
    }
    this.appendReply(line);
  }

  private flood(f: { piece: Buffer; max: number; sent: (bytes: number) => void }): void {
    let total = 0;
    const more = (): void => {
      while (total < f.max && !this.socket.destroyed) {
        total += f.piece.length;
        f.sent(f.piece.length);
        if (!this.socket.write(f.piece)) {
          this.socket.once('drain', more);
          return;
        }
      }
    };
    more();
  }

  /** RFC 3502: all of the command's messages are stored, or none. */
  private multiAppend(
    tag: string,
    mailboxArg: Token | undefined,
    messages: Array<{ flags: string[]; date: string | null; body: Buffer }>,
  ): void {
    if (!this.cfg.caps.includes('MULTIAPPEND')) {
      this.write(`${tag} BAD MULTIAPPEND is not offered`);
      return;
    }
    this.fake.multiAppends.push(messages.length);
    // Held from this connection's first APPEND on, as for single APPENDs (counted per message).
    if (this.cfg.options.holdAppendReplies !== undefined && this.held === null && this.appendsRead === 0)
      this.held = [];
    const appends = messages.map((m) => {
      const a: FakeAppend = {
        n: this.fake.appends.length + 1,
        mailbox: str(mailboxArg),
        ...m,
        body: Buffer.from(m.body),
      };
      this.fake.appends.push(a);
      this.appendsRead++;
      return a;
    });
    const replies = appends.map((a) => this.cfg.options.onAppend?.(a) ?? ({ kind: 'ok' } as FakeAppendReply));
    if (replies.some((r) => r.kind === 'hang')) return;
    const flood = replies.find((r) => r.kind === 'flood');
    if (flood?.kind === 'flood') {
      this.flood(flood);
      return;
    }
    const refused = replies.find((r) => r.kind === 'no' || r.kind === 'bad');
    if (refused && (refused.kind === 'no' || refused.kind === 'bad')) {
      this.appendReply(`${tag} ${refused.kind.toUpperCase()} ${refused.text}`);
      return;
    }
    const mb = this.mailbox(mailboxArg!);
    if (!mb) {
      this.appendReply(`${tag} NO [TRYCREATE] Mailbox doesn't exist`);
      return;
    }
    const drop = replies.find((r) => r.kind === 'drop');
    if (drop?.kind === 'drop' && drop.store === false) {
      this.drop();
      return;
    }
    const first = mb.uidNext;
    for (const a of appends) {
      const kept = this.cfg.options.keepFlag ? a.flags.filter(this.cfg.options.keepFlag) : a.flags;
      mb.messages.push({
        uid: mb.uidNext++,
        flags: kept,
        internalDate: a.date ?? '01-Jan-2020 00:00:00 +0000',
        body: a.body,
      });
    }
    if (drop) {
      this.drop();
      return;
    }
    const withUid = !replies.some((r) => r.kind === 'ok' && r.appendUid === false) && this.cfg.caps.includes('UIDPLUS');
    const lying = replies.find((r) => r.kind === 'ok' && typeof r.appendUid === 'number');
    const set = lying?.kind === 'ok' ? String(lying.appendUid) : `${first}:${mb.uidNext - 1}`;
    this.appendReply(`${tag} OK ${withUid ? `[APPENDUID ${mb.uidValidity} ${set}] ` : ''}Append completed`);
  }

  private appendReply(line: string): void {
    if (this.held === null) {
      this.write(line);
      return;
    }
    this.held.push(line);
    if (this.appendsRead >= (this.cfg.options.holdAppendReplies ?? 0)) {
      const out = this.held;
      this.held = null;
      for (const l of out) this.write(l);
    }
  }
}

/** APPEND's arguments after the mailbox as messages: [flag list] [date] literal, repeated. */
function appendMessages(args: Token[]): Array<{ flags: string[]; date: string | null; body: Buffer }> | null {
  const out: Array<{ flags: string[]; date: string | null; body: Buffer }> = [];
  let i = 0;
  while (i < args.length) {
    const flags = Array.isArray(args[i]) ? flatten(args[i++]) : [];
    const date = typeof args[i] === 'string' && args[i] !== '~' ? (args[i++] as string) : null;
    if (args[i] === '~') i++; // a binary literal's marker (RFC 3516)
    const body = args[i++];
    if (!Buffer.isBuffer(body)) return null;
    out.push({ flags, date, body });
  }
  return out.length > 0 ? out : null;
}

function str(t: Token | undefined): string {
  if (t === undefined) return '';
  if (Buffer.isBuffer(t)) return t.toString('utf8');
  if (Array.isArray(t)) throw new Error('expected a string, got a list');
  return t;
}

function flatten(t: Token | undefined): string[] {
  if (t === undefined) return [];
  return Array.isArray(t) ? t.flatMap((x) => flatten(x)) : [str(t)];
}

function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => '\\' + c)}"`;
}

/** A string as a server sends it: quoted, or as a literal when a quoted string cannot carry it. */
function wireString(s: string): string {
  return /[\r\n\0]/.test(s) ? `{${Buffer.byteLength(s)}}\r\n${s}` : quote(s);
}

function patternRegex(pattern: string, delim: string): RegExp {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '%' ? `[^${esc(delim)}]*` : esc(c)))
    .join('');
  return new RegExp(`^${body}$`, pattern.toUpperCase().startsWith('INBOX') ? 'is' : 's');
}

function messageIdOf(body: Buffer): string | null {
  const end = body.indexOf('\r\n\r\n');
  const head = body.subarray(0, end < 0 ? body.length : end).toString('latin1');
  return /^Message-ID:\s*(<[^>\r\n]*>)/im.exec(head)?.[1] ?? null;
}

/** The command as text for `received`: literals as {n bytes}, the LOGIN password masked. */
function describe(pieces: Array<string | Buffer>, name: string): string {
  const text = pieces.map((p) => (typeof p === 'string' ? p : `{${p.length} bytes}`)).join('');
  if (name === 'AUTHENTICATE') return text.replace(/^(\S+ AUTHENTICATE \S+) .*$/i, '$1 ****');
  return name === 'LOGIN' ? text.replace(/^(\S+ LOGIN \S+ ).*$/i, '$1****') : text;
}

/**
 * Splits a command into tokens. Literal pieces arrive already cut out of the text (each text
 * piece ended in its {n} marker), so a Buffer piece is simply the next token.
 */
function tokenize(pieces: Array<string | Buffer>): Token[] {
  const root: Token[] = [];
  const stack: Token[][] = [root];
  const top = (): Token[] => stack[stack.length - 1]!;
  for (const piece of pieces) {
    if (Buffer.isBuffer(piece)) {
      top().push(piece);
      continue;
    }
    let i = 0;
    while (i < piece.length) {
      const c = piece[i]!;
      if (c === ' ') {
        i++;
      } else if (c === '(') {
        const list: Token[] = [];
        top().push(list);
        stack.push(list);
        i++;
      } else if (c === ')') {
        if (stack.length > 1) stack.pop();
        i++;
      } else if (c === '"') {
        let s = '';
        i++;
        while (i < piece.length && piece[i] !== '"') {
          if (piece[i] === '\\') i++;
          s += piece[i] ?? '';
          i++;
        }
        i++;
        top().push(s);
      } else {
        // An atom; brackets may contain spaces and parens (BODY.PEEK[HEADER.FIELDS (A B)]).
        let s = '';
        let depth = 0;
        while (i < piece.length) {
          const d = piece[i]!;
          if (d === '[') depth++;
          if (d === ']') depth--;
          if (depth === 0 && (d === ' ' || d === '(' || d === ')')) break;
          s += d;
          i++;
        }
        top().push(s);
      }
    }
  }
  return root;
}
