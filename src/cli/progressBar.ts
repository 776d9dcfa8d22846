// A one-line progress bar redrawn in place on stderr. Only on a terminal: in a pipe or a
// log file, carriage-return redraws are noise.

export interface ProgressBar {
  /** Redraws (at most 10 times a second unless forced). */
  update(fraction: number | undefined, label: string, force?: boolean): void;
  /** Clears the line. */
  done(): void;
}

const WIDTH = 30;
const noop: ProgressBar = { update() {}, done() {} };

export function progressBar(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!enabled || !stream.isTTY) return noop;
  let last = 0;
  let drawn = false;
  return {
    update(fraction, label, force = false) {
      const now = Date.now();
      if (now - last < 100 && fraction !== 1 && !force) return; // at most 10 redraws a second
      last = now;
      let bar = '';
      if (fraction !== undefined) {
        const f = Math.max(0, Math.min(1, fraction));
        const full = Math.round(f * WIDTH);
        bar = `[${'#'.repeat(full)}${'.'.repeat(WIDTH - full)}] ${String(Math.floor(f * 100)).padStart(3)}% `;
      }
      stream.write(`\r\x1b[2K${bar}${label}`);
      drawn = true;
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
