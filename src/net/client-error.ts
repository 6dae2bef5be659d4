/**
 * The HTTP edge keyd and the inspector share for requests Node's own HTTP
 * parser refuses (the server's `clientError` event): a malformed request
 * line or header, an unknown HTTP version, both Content-Length and
 * Transfer-Encoding, a malformed chunked body, a header block over the limit
 * (431), a request or header block not received in time (408). Each gets a
 * JSON error like every other answer of the service, and the connection is
 * closed without cutting that answer.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** A JSON error answer written straight to a socket, for requests Node's HTTP parser refused (clientError). */
function rawJsonError(status: number, reason: string, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** How long a connection refused at the parser may linger after its answer, read and discarded, before it is destroyed. */
const CLIENT_ERROR_LINGER_MS = 2000;

/** Connections already answered after a parser error. */
const answered = new WeakSet<Duplex>();

/** The JSON answer to an error of Node's HTTP parser (clientError): status, reason, code, message. */
export function clientErrorAnswer(
  err: Error & { code?: string },
  maxHeaderBytes: number,
): [number, string, 'bad-request' | 'headers-too-large' | 'timeout', string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'headers-too-large', `Request header block over ${maxHeaderBytes} bytes`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'timeout', 'Request not received in time'];
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return [408, 'Request Timeout', 'timeout', 'Request header block not received in time'];
    default:
      return [
        400,
        'Bad Request',
        'bad-request',
        `Malformed HTTP request${err.code?.startsWith('HPE_') ? ` (${err.code.slice(4).toLowerCase().replace(/_/g, ' ')})` : ''}`,
      ];
  }
}

/**
 * Answers a request Node's parser refused with a JSON error, unless an answer
 * has begun already. The answer is ended (flushed, then the write side
 * closed), and what the client still sends is read and discarded until it
 * closes or CLIENT_ERROR_LINGER_MS pass: destroying the socket at once, with
 * unread bytes in the kernel, makes TCP reset the connection, and the client
 * may lose the answer it was sent.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex, maxHeaderBytes: number): void {
  // Node's parser reports an error again for every further chunk the client sends: answered once, then left to linger.
  if (answered.has(socket)) return;
  answered.add(socket);
  const inProgress = (socket as { _httpMessage?: ServerResponse })._httpMessage;
  if (!socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, reason, code, message] = clientErrorAnswer(err, maxHeaderBytes);
  const linger = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
  socket.on('error', () => socket.destroy());
  if (inProgress) {
    // A request whose header was read and whose body Node could not parse: its response object is unused yet.
    inProgress.shouldKeepAlive = false;
  }
  socket.end(rawJsonError(status, reason, code, message));
  socket.resume();
}
