// Sign-in rate limiting: at most `failures` failed sign-ins per client address and per role
// name within `windowMs`; beyond that, sign-in answers 429 with Retry-After and does not
// even try the password (a guess gets no answer, right or wrong). In memory, like sessions.

export interface SignInLimit {
  /** Failed sign-ins allowed per window (per address and per role name). Default 5. */
  failures: number;
  /** Default 60,000 ms. */
  windowMs: number;
}

export const DEFAULT_SIGN_IN_LIMIT: SignInLimit = { failures: 5, windowMs: 60_000 };

/** Tracked keys at most: past it the oldest are forgotten (a spray of names cannot fill memory). */
const MAX_KEYS = 10_000;

export class SignInLimiter {
  /** Failure times per key ('ip:…', 'user:…'), oldest first. */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limit: SignInLimit = DEFAULT_SIGN_IN_LIMIT) {}

  /** Seconds to wait before this address or role may try again; 0 when it may now. */
  retryAfter(ip: string, user: string, now = Date.now()): number {
    const waits = [this.recent(`ip:${ip}`, now), this.recent(`user:${user}`, now)].map((times) =>
      times.length >= this.limit.failures ? times[times.length - this.limit.failures]! + this.limit.windowMs - now : 0,
    );
    return Math.ceil(Math.max(...waits) / 1000);
  }

  recordFailure(ip: string, user: string, now = Date.now()): void {
    for (const key of [`ip:${ip}`, `user:${user}`]) {
      const times = this.recent(key, now);
      times.push(now);
      this.failures.delete(key); // re-inserted last: the Map's order is then oldest activity first
      this.failures.set(key, times);
    }
    while (this.failures.size > MAX_KEYS) this.failures.delete(this.failures.keys().next().value!);
  }

  /** A correct password for the role: its earlier failures no longer count against it. */
  recordSuccess(user: string): void {
    this.failures.delete(`user:${user}`);
  }

  private recent(key: string, now: number): number[] {
    const times = (this.failures.get(key) ?? []).filter((t) => now - t < this.limit.windowMs);
    if (times.length === 0) this.failures.delete(key);
    else this.failures.set(key, times);
    return times;
  }
}
