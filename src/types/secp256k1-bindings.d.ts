/** The part of secp256k1's native binding (libsecp256k1 as an N-API addon) that src/crypto/group-native.ts uses. */
declare module 'secp256k1/bindings' {
  interface NativeSecp256k1 {
    contextRandomize(seed: Uint8Array | null): void;
    publicKeyCreate(seckey: Uint8Array, compressed?: boolean): Uint8Array;
    publicKeyConvert(pubkey: Uint8Array, compressed?: boolean): Uint8Array;
    publicKeyNegate(pubkey: Uint8Array, compressed?: boolean): Uint8Array;
    publicKeyCombine(pubkeys: Uint8Array[], compressed?: boolean): Uint8Array;
    /** Variable time in `tweak` (libsecp256k1's ecmult): public scalars only. */
    publicKeyTweakMul(pubkey: Uint8Array, tweak: Uint8Array, compressed?: boolean): Uint8Array;
    /** libsecp256k1's ECDH (ecmult_const: constant time); `hashfn` gets the product's x and y and returns `output`'s content. */
    ecdh(
      pubkey: Uint8Array,
      seckey: Uint8Array,
      options: { hashfn: (x: Uint8Array, y: Uint8Array) => Uint8Array; xbuf?: Uint8Array; ybuf?: Uint8Array },
      output: Uint8Array,
    ): Uint8Array;
  }
  const secp256k1: NativeSecp256k1;
  export = secp256k1;
}
