// A job queue with priorities, retries with backoff, and concurrency limits per tenant.
// Fixture for the autocomplete replay benchmark.

export type JobState = "queued" | "running" | "done" | "failed";

export interface JobSpec<T> {
  id: string;
  tenant: string;
  priority: number;
  maxAttempts: number;
  run: (signal: AbortSignal) => Promise<T>;
}

export interface JobRecord<T> {
  spec: JobSpec<T>;
  state: JobState;
  attempts: number;
  result?: T;
  error?: string;
  notBefore: number;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export class BackoffPolicy {
  constructor(
    private readonly baseMs = 200,
    private readonly maxMs = 30_000,
    private readonly jitter = 0.2,
  ) {}

  delay(attempt: number, random: () => number = Math.random): number {
    const exp = Math.min(this.maxMs, this.baseMs * 2 ** Math.max(0, attempt - 1));
    const spread = exp * this.jitter;
    return Math.round(exp - spread + random() * 2 * spread);
  }
}

class MinHeap<T> {
  private items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
    let i = this.items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(this.items[i], this.items[parent])) {
        break;
      }
      [this.items[i], this.items[parent]] = [this.items[parent], this.items[i]];
      i = parent;
    }
  }

  peek(): T | undefined {
    return this.items[0];
  }

  pop(): T | undefined {
    const top = this.items[0];
    const last = this.items.pop();
    if (this.items.length > 0 && last !== undefined) {
      this.items[0] = last;
      this.sink(0);
    }
    return top;
  }

  private sink(i: number): void {
    const n = this.items.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let best = i;
      if (left < n && this.before(this.items[left], this.items[best])) {
        best = left;
      }
      if (right < n && this.before(this.items[right], this.items[best])) {
        best = right;
      }
      if (best === i) {
        return;
      }
      [this.items[i], this.items[best]] = [this.items[best], this.items[i]];
      i = best;
    }
  }
}

export interface SchedulerOptions {
  concurrency: number;
  perTenant: number;
  backoff?: BackoffPolicy;
  clock?: Clock;
}

export class JobScheduler {
  private readonly queue: MinHeap<JobRecord<unknown>>;
  private readonly records = new Map<string, JobRecord<unknown>>();
  private readonly runningByTenant = new Map<string, number>();
  private readonly controllers = new Map<string, AbortController>();
  private running = 0;
  private readonly backoff: BackoffPolicy;
  private readonly clock: Clock;
  private listeners: Array<(record: JobRecord<unknown>) => void> = [];

  constructor(private readonly options: SchedulerOptions) {
    this.backoff = options.backoff ?? new BackoffPolicy();
    this.clock = options.clock ?? systemClock;
    this.queue = new MinHeap((a, b) => {
      if (a.notBefore !== b.notBefore) {
        return a.notBefore < b.notBefore;
      }
      return a.spec.priority > b.spec.priority;
    });
  }

  submit<T>(spec: JobSpec<T>): JobRecord<T> {
    if (this.records.has(spec.id)) {
      throw new Error(`job ${spec.id} already submitted`);
    }
    const record: JobRecord<T> = { spec, state: "queued", attempts: 0, notBefore: this.clock.now() };
    this.records.set(spec.id, record as JobRecord<unknown>);
    this.queue.push(record as JobRecord<unknown>);
    this.pump();
    return record;
  }

  cancel(id: string): boolean {
    const controller = this.controllers.get(id);
    if (controller) {
      controller.abort();
      return true;
    }
    const record = this.records.get(id);
    if (record && record.state === "queued") {
      record.state = "failed";
      record.error = "cancelled";
      this.emit(record);
      return true;
    }
    return false;
  }

  onChange(listener: (record: JobRecord<unknown>) => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  stats(): Record<JobState, number> {
    const counts: Record<JobState, number> = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const record of this.records.values()) {
      counts[record.state] += 1;
    }
    return counts;
  }

  private emit(record: JobRecord<unknown>): void {
    for (const listener of this.listeners) {
      try {
        listener(record);
      } catch (err) {
        console.warn("job listener failed", err);
      }
    }
  }

  private tenantHasRoom(tenant: string): boolean {
    return (this.runningByTenant.get(tenant) ?? 0) < this.options.perTenant;
  }

  private pump(): void {
    const skipped: JobRecord<unknown>[] = [];
    while (this.running < this.options.concurrency && this.queue.size > 0) {
      const next = this.queue.pop();
      if (!next || next.state !== "queued") {
        continue;
      }
      if (next.notBefore > this.clock.now() || !this.tenantHasRoom(next.spec.tenant)) {
        skipped.push(next);
        continue;
      }
      void this.start(next);
    }
    for (const record of skipped) {
      this.queue.push(record);
    }
  }

  private async start(record: JobRecord<unknown>): Promise<void> {
    const { spec } = record;
    const controller = new AbortController();
    this.controllers.set(spec.id, controller);
    this.running += 1;
    this.runningByTenant.set(spec.tenant, (this.runningByTenant.get(spec.tenant) ?? 0) + 1);
    record.state = "running";
    record.attempts += 1;
    this.emit(record);
    try {
      record.result = await spec.run(controller.signal);
      record.state = "done";
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (controller.signal.aborted || record.attempts >= spec.maxAttempts) {
        record.state = "failed";
        record.error = message;
      } else {
        record.state = "queued";
        record.notBefore = this.clock.now() + this.backoff.delay(record.attempts);
        this.queue.push(record);
        void this.clock.sleep(record.notBefore - this.clock.now()).then(() => this.pump());
      }
    } finally {
      this.controllers.delete(spec.id);
      this.running -= 1;
      this.runningByTenant.set(spec.tenant, (this.runningByTenant.get(spec.tenant) ?? 1) - 1);
      this.emit(record);
      this.pump();
    }
  }
}

export async function drain(scheduler: JobScheduler, clock: Clock = systemClock, pollMs = 50): Promise<void> {
  for (;;) {
    const { queued, running } = scheduler.stats();
    if (queued === 0 && running === 0) {
      return;
    }
    await clock.sleep(pollMs);
  }
}
