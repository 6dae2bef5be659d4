/**
 * Domain-separation labels. Each names the protocol version, so a key or proof
 * made for one purpose (or one version) can never be taken for another
 * (docs/protocol.md, "Groups and primitives").
 */
export const PROTOCOL_VERSION = 1;

const enc = (s: string) => new TextEncoder().encode(s);

export const LABEL = {
  contentKey: enc('SSMAX-v1 content-key'),
  contentSalt: enc('SSMAX-v1 salt'),
  keyId: enc('SSMAX-v1 key-id'),
  dleq: enc('SSMAX-v1 dleq'),
  reencryptionProof: enc('SSMAX-v1 reencryption-proof'),
} as const;
