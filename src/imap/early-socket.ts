/**
 * imapflow's connection, opened before imapflow is loaded. Loading imapflow is a block of CPU
 * (imapflow-load.ts); the connect, TLS handshake and greeting of its connection need none of it,
 * so writer.ts opens the socket through net/connect.ts (the same TLS options, CA and SNI) while
 * the load runs, and imapflow's transport (imapflow-adapter.ts) takes it for its first connect
 * instead of opening one then. The greeting waits in the socket, unread, until imapflow pipes it.
 */
import type net from 'node:net';
import { connectedBefore, createSocket, type SocketTarget } from '../net/connect.js';

export class EarlySocket {
  readonly socket: net.Socket;
  private connected = false;
  /** imapflow's connect callback, when it took the socket before it was connected. */
  private whenConnected: (() => void) | null = null;
  /** The socket's first error before imapflow took it (imapflow's own handler sees later ones). */
  private error: Error | null = null;
  private taken = false;

  constructor(
    private readonly target: SocketTarget,
    readonly secure: boolean,
  ) {
    // Told by createSocket, not by the socket's own event: a socket opened ahead (net/connect.ts
    // warmUp) may have been connected before this one was made.
    this.socket = createSocket(target, secure, () => {
      this.connected = true;
      this.whenConnected?.();
    });
    this.socket.once('error', (err) => {
      this.error ??= err;
    });
  }

  /**
   * For imapflow's transport: the socket, with `onConnect` called once it is connected (secured
   * when implicit TLS), or null when it cannot stand in for a socket opened now (another TLS mode,
   * already taken). An error it met already is thrown, as a refused connect would be; a close by
   * the server before imapflow listened is told as an error (net/connect.ts connectedBefore).
   */
  take(secure: boolean, onConnect: () => void): net.Socket | null {
    if (this.taken || secure !== this.secure) return null;
    this.taken = true;
    if (this.error !== null) {
      this.socket.destroy();
      throw this.error;
    }
    if (this.connected) connectedBefore(this.socket, this.target, onConnect);
    else this.whenConnected = onConnect;
    return this.socket;
  }

  /** Closes the socket unless imapflow took it (the connect was given up before it started). */
  discard(): void {
    if (!this.taken) this.socket.destroy();
  }
}
