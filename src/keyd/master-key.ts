/**
 * The key service's master key: 32 random bytes in a file only its owner can
 * read. Every secret at rest (org private keys, tracking keys, identity
 * references) is wrapped under a key derived from it with AES-256-GCM, the
 * record's label as associated data — so a wrapped value cannot be moved to
 * another record. The audit log's MAC key is derived from it too.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { KeydError } from './errors';
import { cannotRead, errnoText } from '../errors/errno';

export const MASTER_KEY_LENGTH = 32;
const WRAP_VERSION = 1;

/** Writes a fresh master key (hex) to `path`, mode 0600; refuses to overwrite. */
export function createMasterKeyFile(path: string, key: Uint8Array = randomBytes(MASTER_KEY_LENGTH)): void {
  if (key.length !== MASTER_KEY_LENGTH)
    throw new KeydError('config', `Cannot write master key: expected ${MASTER_KEY_LENGTH} bytes, got ${key.length}`);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    throw new KeydError('config', `Cannot create master key file "${path}": ${errnoText(err)}`);
  }
  try {
    writeSync(fd, `${Buffer.from(key).toString('hex')}\n`);
  } finally {
    closeSync(fd);
  }
}

/** Reads the master key, refusing a file that group or others can access. */
export function loadMasterKey(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new KeydError('config', cannotRead('master key file', path, err));
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new KeydError(
        'config',
        `Cannot use master key file "${path}": mode ${mode.toString(8).padStart(4, '0')} lets others read it (chmod 600)`,
      );
    }
    const text = readFileSync(fd, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(text)) throw new KeydError('config', `Cannot use master key file "${path}": expected 64 hex characters`);
    return new Uint8Array(Buffer.from(text, 'hex'));
  } finally {
    closeSync(fd);
  }
}

function derive(master: Uint8Array, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), Buffer.from(`SSMAX-v1 keyd ${label}`), 32));
}

/**
 * The passphrase of keyd's copy of the org CA key ([pki] org_ca_key) when no
 * org_ca_passphrase_file is set: derived from the master key (its own label),
 * so the file on disk is an encrypted PKCS#8 key, useless without the master key.
 */
export function orgCaKeyPassphrase(master: Uint8Array): string {
  if (!(master instanceof Uint8Array) || master.length !== MASTER_KEY_LENGTH)
    throw new KeydError('config', 'Cannot use master key: expected 32 bytes');
  return derive(master, 'org-ca-key').toString('base64url');
}

/** Wraps and unwraps secrets at rest under the master key. */
export class SecretWrapper {
  private readonly wrapKey: Buffer;
  /** Key for the audit log's chain and content MACs. */
  readonly auditKey: Buffer;
  /** Key check value: shows which master key a store was made with, reveals nothing of it. */
  readonly checkValue: string;

  constructor(master: Uint8Array) {
    if (!(master instanceof Uint8Array) || master.length !== MASTER_KEY_LENGTH)
      throw new KeydError('config', 'Cannot use master key: expected 32 bytes');
    this.wrapKey = derive(master, 'wrap');
    this.auditKey = derive(master, 'audit');
    this.checkValue = derive(master, 'check').subarray(0, 8).toString('hex');
  }

  /** version(1) || nonce(12) || ciphertext || tag(16), bound to `label`. */
  wrap(label: string, secret: Uint8Array): Buffer {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.wrapKey, nonce);
    c.setAAD(Buffer.from(label));
    const body = Buffer.concat([c.update(secret), c.final()]);
    return Buffer.concat([Buffer.from([WRAP_VERSION]), nonce, body, c.getAuthTag()]);
  }

  unwrap(label: string, blob: Uint8Array): Buffer {
    const b = Buffer.from(blob);
    if (b.length < 29 || b[0] !== WRAP_VERSION) throw new KeydError('internal', `Cannot unwrap "${label}": malformed wrapped value`);
    const d = createDecipheriv('aes-256-gcm', this.wrapKey, b.subarray(1, 13));
    d.setAAD(Buffer.from(label));
    d.setAuthTag(b.subarray(b.length - 16));
    const body = d.update(b.subarray(13, b.length - 16));
    try {
      return Buffer.concat([body, d.final()]);
    } catch {
      throw new KeydError('internal', `Cannot unwrap "${label}": wrong master key or damaged record`);
    } finally {
      body.fill(0); // the secret (or, on failure, unauthenticated bytes) lives on only in the returned copy
    }
  }
}
