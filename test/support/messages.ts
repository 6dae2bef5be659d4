import { type Group, type Recipient, generateEncryptionKeyPair, keyIdOf } from '../../src/crypto';
import type { Rng } from '../../src/crypto';

export function keyring(group: Group, rng: Rng, n: number) {
  return Array.from({ length: n }, () => {
    const kp = generateEncryptionKeyPair(group, rng);
    const recipient: Recipient = { keyId: keyIdOf(group, kp.publicKey), publicKey: kp.publicKey };
    return { ...kp, recipient, key: { keyId: recipient.keyId, privateKey: kp.privateKey } };
  });
}

export function plainMessage(body = 'Hello Bob,\r\nthe figures are attached.\r\n'): Buffer {
  return Buffer.from(
    'From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nBcc: carol@c.example\r\nSubject: Q3 figures\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n' +
      'Message-ID: <m1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' +
      body,
  );
}

export function multipartMessage(attachment: Buffer = Buffer.from('%PDF-1.4 pretend pdf \x00\x01\x02'.repeat(50), 'latin1')): Buffer {
  const b64 = attachment.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: =?UTF-8?B?5pel5pys6Kqe?=\r\nMessage-ID: <m2@a.example>\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n' +
      '--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="q3.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
      `${b64}\r\n--b1\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="q3.csv"\r\n\r\na,b\r\n1,2\r\n--b1--\r\nepilogue\r\n`,
    'latin1',
  );
}
