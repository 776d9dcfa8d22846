// The vault's ciphertext format, in Node: a 16-byte random IV followed by AES-256-CBC with
// PKCS#7 padding of the value's UTF-8 bytes, which is what pgcrypto's
// encrypt_iv(value, key, iv, 'aes-cbc/pad:pkcs') writes for the embedded vault
// (db/code/93_vault.sql). With a separate key store the data keys never enter PostgreSQL,
// so the TypeScript layer encrypts and decrypts (src/vault/keyStoreVault.ts).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-cbc';
const IV_BYTES = 16;

export function encryptValue(dataKey: Buffer, value: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, dataKey, iv);
  return Buffer.concat([iv, cipher.update(value, 'utf8'), cipher.final()]);
}

export function decryptValue(dataKey: Buffer, ciphertext: Buffer): string {
  const decipher = createDecipheriv(ALGORITHM, dataKey, ciphertext.subarray(0, IV_BYTES));
  return Buffer.concat([decipher.update(ciphertext.subarray(IV_BYTES)), decipher.final()]).toString('utf8');
}
