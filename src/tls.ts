/**
 * How a connection is secured, for POP3 and IMAP alike; here, below both protocol clients, so
 * neither imports the other for it.
 */
/** 'none' is only ever chosen by an explicit user option. */
export type TlsMode = 'implicit' | 'starttls' | 'none';
