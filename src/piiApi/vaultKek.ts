// The vault's key-encryption key when it is held outside the database (external KEK mode,
// docs/vault.md). The PII API (and lethe pii-api kek rotate) read it from a file or
// LETHE_VAULT_KEK and hand it to PostgreSQL in each connection's startup options
// (-c lethe.vault_kek=…): not a statement, not a bind parameter, so no log line has it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const KEK_PATTERN = /^[0-9a-f]{64}$/;

export class VaultKekError extends Error {
  override readonly name = 'VaultKekError';
}

/** A KEK as 64 lower-case hex digits; the error names where it came from, never its text. */
export function parseVaultKek(text: string, source: string): string {
  const kek = text.trim().toLowerCase();
  if (!KEK_PATTERN.test(kek)) throw new VaultKekError(`${source} must hold a KEK of 64 hexadecimal digits (256 bits)`);
  return kek;
}

/** The KEK from --kek-file, else LETHE_VAULT_KEK, else none (the KEK is embedded). */
export function readVaultKek(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new VaultKekError(`cannot read the KEK file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return parseVaultKek(text, `the KEK file ${file}`);
  }
  const fromEnv = env.LETHE_VAULT_KEK;
  return fromEnv ? parseVaultKek(fromEnv, 'LETHE_VAULT_KEK') : undefined;
}

/** A new random KEK (256 bits), as hex. */
export function newVaultKek(): string {
  return randomBytes(32).toString('hex');
}

/**
 * pg's `options` for connections that carry the current KEK and, for a rotation, the new
 * one; anything already in PGOPTIONS is kept. undefined when there is nothing to carry.
 */
export function vaultKekOptions(
  keks: { current?: string; next?: string },
  pgOptions: string | undefined = process.env.PGOPTIONS,
): string | undefined {
  const parts = [
    pgOptions,
    keks.current && `-c lethe.vault_kek=${keks.current}`,
    keks.next && `-c lethe.vault_new_kek=${keks.next}`,
  ].filter((p): p is string => !!p);
  return keks.current || keks.next ? parts.join(' ') : undefined;
}
