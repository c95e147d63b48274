// A Map bounded in entries that drops the least recently used one when full: a flood of new keys pushes out only
// the coldest entries, never the whole map at once.
export class Lru<V> {
  private map = new Map<string, V>();
  constructor(public readonly maxEntries: number) {}

  get size() {
    return this.map.size;
  }
  /** the value, now the most recently used */
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string); // Map keeps insertion order
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}
