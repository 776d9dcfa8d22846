// The lethe CLI as a real process: one command to its end, or lethe pii-api until killed.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const LETHE_BIN = fileURLToPath(new URL('../../bin/lethe.js', import.meta.url));

export interface LetheRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** lethe <args> with DATABASE_URL (and any other environment) set; resolves when it exits. */
export function runLethe(args: string[], env: Record<string, string>): Promise<LetheRun> {
  const child = spawn(process.execPath, [LETHE_BIN, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** lethe pii-api on a free port, until killed; its whole output goes to onOutput. */
export async function startPiiApi(
  args: string[],
  env: Record<string, string>,
  onOutput: (d: string) => void,
): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, [LETHE_BIN, 'pii-api', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, ...env },
  });
  let output = '';
  const collect = (d: Buffer) => {
    output += d;
    onOutput(String(d));
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/[\d.:]+)/.exec(output);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 50);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`pii-api exited with ${code}: ${output}`));
    });
  });
  return { child, base: url };
}
