// One running promise per key: callers asking for the same key while it runs share it. The promise is handed to the
// request's waitUntil, so it outlives the request that started it (workerd cancels a finished request's pending I/O,
// which would leave the other callers waiting).
export class SingleFlight<T> {
  private running = new Map<string, Promise<T>>();

  run(key: string, start: () => Promise<T>, waitUntil?: (p: Promise<unknown>) => void): Promise<T> {
    let p = this.running.get(key);
    if (!p) {
      const started = start().finally(() => {
        if (this.running.get(key) === started) this.running.delete(key);
      });
      this.running.set(key, started);
      waitUntil?.(started.catch(() => {}));
      p = started;
    }
    return p;
  }

  /** later callers start afresh (the running one finishes for those already waiting on it) */
  forget(key: string): void {
    this.running.delete(key);
  }
}
