/** The crypto core: pure functions, randomness injected, no I/O. */
export * from './errors';
export * from './random';
export * from './scalar';
export * from './group';
export * from './backend';
export * from './keys';
export * from './capsule';
export * from './kdf';
export * from './reencrypt';
export * from './dleq';
export * from './blinded-decrypt';
export * from './stream';
export * from './ecdsa';
export { PROTOCOL_VERSION } from './labels';
