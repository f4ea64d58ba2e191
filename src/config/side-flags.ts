/**
 * What a user said about one side (the POP3 source or the IMAP destination), before anything is
 * resolved: from command-line flags or from a config file's endpoint, which is why it lives here,
 * below both the config resolver that produces it and the CLI that reads it.
 */

export interface EndpointInput {
  /** `pop3s://user@host:port` and friends. */
  url?: string;
  host?: string;
  port?: string | number;
  user?: string;
  tls?: string;
  /** Login method: --pop-auth / --imap-auth, `?auth=` in the URL, `auth:` in a config. */
  auth?: string;
  /** Skip certificate verification (the user asked for it by name). */
  insecure?: boolean;
}

export interface SideFlags extends EndpointInput {
  caFile?: string;
  passwordEnv?: string;
  passwordFile?: string;
  passwordCommand?: string;
  /** From an account list's password column (a file only its owner can read); never from argv. */
  password?: string;
  /** IMAP only: `--provider` / `provider:`, a name of config/providers.ts. */
  provider?: string;
  /** Run for every login; its first stdout line is an OAuth2 access token (no password then). */
  oauth2TokenCommand?: string;
  /** Admin login: authenticate as this user (with the password given) on behalf of the URL's user. */
  adminUser?: string;
  /** IMAP only: `--append-connections` / `append_connections:`, APPEND connections at most (imap/append-pool.ts). */
  appendConnections?: number;
}
