// Minimal types for haraka-dsn (SMTP replies with enhanced status codes, RFC 3463).
declare module 'haraka-dsn' {
  interface DsnReply {
    readonly code: number;
    readonly reply: string;
  }
  const DSN: { create(code: number, msg: string, subject?: number, detail?: number): DsnReply };
  export = DSN;
}
