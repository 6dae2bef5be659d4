/**
 * TCP_NODELAY for Haraka, which never sets it: each small SMTP reply would
 * otherwise wait on the peer's delayed ACK. Used by the ssmax plugin, and on
 * its own as the `ssmax-nodelay` plugin (the benchmark's plain-relay baseline).
 */
interface Sock {
  setNoDelay?: (v: boolean) => void;
  targetsocket?: { setNoDelay?: (v: boolean) => void };
}

export function noDelay(socket: Sock | undefined): void {
  // Haraka wraps sockets in a pluggableStream whose own setNoDelay does nothing.
  if (socket?.targetsocket?.setNoDelay) socket.targetsocket.setNoDelay(true);
  else socket?.setNoDelay?.(true);
}

/**
 * Haraka's outgoing sockets (outbound, smtp_forward): wrap tls_socket.connect so each gets TCP_NODELAY.
 * `harakaRequire` is the plugin's `this.haraka_require`: the running server's module, not another copy.
 */
export function patchOutboundNoDelay(harakaRequire: (name: string) => unknown): void {
  const tls = harakaRequire('tls_socket') as { connect: (o: unknown) => Sock; __ssmaxNoDelay?: boolean };
  if (tls.__ssmaxNoDelay) return;
  const connect = tls.connect;
  tls.connect = (o: unknown) => {
    const s = connect(o);
    noDelay(s);
    return s;
  };
  tls.__ssmaxNoDelay = true;
}

/** The `ssmax-nodelay` plugin's hooks. */
export function register(this: { haraka_require(name: string): unknown }): void {
  patchOutboundNoDelay((name) => this.haraka_require(name));
}

export function hook_connect_init(next: () => void, connection: { client: Sock }): void {
  noDelay(connection.client);
  next();
}
