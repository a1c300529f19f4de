/**
 * Runs `work` every `intervalMs` after the previous run ended (never two at once, however long
 * one takes), until stopped. The timer does not keep the process alive.
 */
export class Repeating {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly work: () => Promise<unknown>,
  ) {}

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.work().finally(() => this.schedule()), this.intervalMs);
    this.timer.unref();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
