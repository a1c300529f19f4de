/**
 * One connection per broker URL, shared by every subscription and every concurrent send to it.
 * A connection that reports itself lost is dropped, and the next send opens a new one: that is
 * how deliveries resume after a broker restart. A failed connect is remembered for
 * `retryConnectMs`, so a burst of sends to a broker that is down fails fast (each a failed
 * attempt on its retry schedule) instead of each opening a socket. Connections unused for
 * `idleMs` are closed (subscriptions deleted or moved).
 */
export class ConnectionPool<C> {
  private readonly entries = new Map<string, { connection: Promise<C>; usedAt: number }>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    /** Opens a connection; calls `lost()` when it goes away (closed by the broker, socket error). */
    private readonly open: (url: string, lost: () => void) => Promise<C>,
    private readonly shut: (connection: C) => Promise<void>,
    private readonly retryConnectMs = 500,
    private readonly idleMs = 5 * 60_000,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(idleMs, 60_000));
    this.sweeper.unref();
  }

  get(url: string): Promise<C> {
    if (this.closed) return Promise.reject(new Error("the transport is closed"));
    const existing = this.entries.get(url);
    if (existing) {
      existing.usedAt = Date.now();
      return existing.connection;
    }
    const entry = { connection: null as unknown as Promise<C>, usedAt: Date.now() };
    const forget = () => {
      if (this.entries.get(url) === entry) this.entries.delete(url);
    };
    entry.connection = this.open(url, forget);
    entry.connection.catch(() => setTimeout(forget, this.retryConnectMs).unref());
    this.entries.set(url, entry);
    return entry.connection;
  }

  /** Drops a connection that turned out broken (its next user opens a fresh one). */
  discard(url: string, connection: C): void {
    const entry = this.entries.get(url);
    if (!entry) return;
    void entry.connection.then(
      (c) => {
        if (c === connection && this.entries.get(url) === entry) {
          this.entries.delete(url);
          this.shut(c).catch(() => undefined);
        }
      },
      () => undefined,
    );
  }

  private sweep(): void {
    const now = Date.now();
    for (const [url, entry] of this.entries) {
      if (now - entry.usedAt < this.idleMs) continue;
      this.entries.delete(url);
      entry.connection
        .then(
          (c) => this.shut(c),
          () => undefined,
        )
        .catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(
      all.map((e) =>
        e.connection
          .then(
            (c) => this.shut(c),
            () => undefined,
          )
          .catch(() => undefined),
      ),
    );
  }
}
