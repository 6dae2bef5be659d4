/**
 * Keys of the hierarchy: P-256 signing keys (every certificate, CRL and bundle
 * signature) and secp256k1 encryption keys (capsules, docs/protocol.md "Groups and
 * primitives"), converted between the forms the rest of the project uses.
 *
 * The crypto core represents an encryption public key as a 33-byte compressed
 * secp256k1 point; X.509 carries it as an id-ecPublicKey SubjectPublicKeyInfo
 * with the secp256k1 named curve (RFC 5480), which OpenSSL understands.
 */
import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { generateP256KeyPair, type P256KeyPair } from '../crypto/ecdsa';
import { type CertificateInput, parseCertificate } from './certificate';
import { TAG, children, decodeBitString, expectTag, parseDer } from './der';

export type KeyAlgorithm = 'p256' | 'secp256k1' | 'other';

export { generateP256KeyPair, type P256KeyPair };

/** DER prefix of an uncompressed secp256k1 SPKI: SEQ{SEQ{ecPublicKey, secp256k1}, BIT STRING 00 04…}. */
const SECP256K1_SPKI_PREFIX = Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex');
/** Same for P-256. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

export function generateSecp256k1KeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
}

/** Uncompressed 65-byte form of a compressed (33) or uncompressed (65) secp256k1 point; throws if not on the curve. */
export function decompressSecp256k1(point: Uint8Array): Uint8Array {
  if (!(point instanceof Uint8Array) || (point.length !== 33 && point.length !== 65)) {
    throw new TypeError(
      `Cannot read secp256k1 point: expected 33 or 65 bytes, got ${point instanceof Uint8Array ? point.length : typeof point}`,
    );
  }
  try {
    return secp256k1.Point.fromBytes(point).toBytes(false);
  } catch {
    throw new TypeError(`Cannot read secp256k1 point "${Buffer.from(point).toString('hex')}": not a point on the curve`);
  }
}

/** SubjectPublicKeyInfo DER for a secp256k1 public point (33-byte compressed or 65-byte uncompressed). */
export function secp256k1SpkiFromPoint(point: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.concat([SECP256K1_SPKI_PREFIX, decompressSecp256k1(point)]));
}

/** SPKI DER of a node:crypto public (or private) key. */
export function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

/** The curve of an SPKI, by parsing it through node:crypto (OpenSSL). */
export function keyAlgorithmOfSpki(spki: Uint8Array): KeyAlgorithm {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec') return 'other';
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'p256';
    if (curve === 'secp256k1') return 'secp256k1';
    return 'other';
  } catch {
    return 'other';
  }
}

/** The 33-byte compressed secp256k1 point of an SPKI; throws if the SPKI is not secp256k1. */
export function compressedPointFromSpki(spki: Uint8Array): Uint8Array {
  const buf = Buffer.from(spki);
  let point: Uint8Array;
  if (buf.length === SECP256K1_SPKI_PREFIX.length + 65 && buf.subarray(0, SECP256K1_SPKI_PREFIX.length).equals(SECP256K1_SPKI_PREFIX)) {
    point = buf.subarray(SECP256K1_SPKI_PREFIX.length);
  } else {
    // Other encodings (e.g. a compressed point inside the SPKI): let OpenSSL normalise it.
    if (keyAlgorithmOfSpki(spki) !== 'secp256k1') throw new TypeError('Cannot extract secp256k1 point: the key is not on secp256k1');
    const jwk = createPublicKey({ key: buf, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
  }
  return secp256k1.Point.fromBytes(point).toBytes(true);
}

/** True if the SPKI is exactly an uncompressed P-256 key (the only issuer key we accept). */
export function isP256Spki(spki: Uint8Array): boolean {
  const buf = Buffer.from(spki);
  return buf.length === P256_SPKI_PREFIX.length + 65 && buf.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX);
}

/** PKCS#8 PEM of a private key, encrypted with AES-256-CBC (PBES2, scrypt-free OpenSSL default) when a passphrase is given. */
export function privateKeyToPem(key: KeyObject, passphrase?: string): string {
  if (passphrase !== undefined) {
    if (passphrase.length === 0) throw new Error('Cannot encrypt private key: the passphrase is empty');
    return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
  }
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** Reads a PKCS#8 PEM private key (encrypted if it says so). */
export function privateKeyFromPem(pem: string, passphrase?: string): KeyObject {
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY');
  if (encrypted && passphrase === undefined) throw new Error('Cannot read private key: it is encrypted and no passphrase was given');
  try {
    return createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase } : { key: pem, format: 'pem' });
  } catch {
    throw new Error(
      encrypted ? 'Cannot read private key: wrong passphrase or damaged file' : 'Cannot read private key: not a PKCS#8 PEM key',
    );
  }
}

/**
 * The 33-byte compressed secp256k1 point an encryption-key certificate (org or
 * user) certifies: the form the crypto core encapsulates to. Throws if the
 * certificate's key is not on secp256k1.
 */
export function encryptionPointOf(cert: CertificateInput): Uint8Array {
  return compressedPointFromSpki(parseCertificate(cert).spki);
}

/**
 * True if the SPKI holds a valid point of the given curve (on the curve, not
 * infinity). Pure arithmetic (noble): about six times faster here than
 * node:crypto createPublicKey, which matters on the cold validation path.
 */
export function publicKeyIsValid(spki: Uint8Array, algorithm: KeyAlgorithm): boolean {
  if (algorithm === 'other') return false;
  try {
    const [, key] = children(parseDer(spki, 'public key', TAG.sequence), 'public key');
    if (!key) return false;
    const { bytes, unusedBits } = decodeBitString(expectTag(key, TAG.bitString, 'public key'), 'public key');
    if (unusedBits !== 0) return false;
    (algorithm === 'p256' ? p256 : secp256k1).Point.fromBytes(bytes).assertValidity();
    return true;
  } catch {
    return false;
  }
}
