import type { QueryValues } from "./operation.ts";
import type { FeedMessage, FeedPage, FeedQuery } from "./apiTypes.ts";

/**
 * The service's committed messages in commit order, read page by page as an async iterator.
 * Iterating ends once everything committed so far has been read; `cursor` is where to resume
 * (pass it as `after`), later or in another process.
 */
/** How long iterating waits, by default, for committed messages held back by an older transaction. */
const DEFAULT_WAIT_MS = 30_000;

export class FeedReader implements AsyncIterable<FeedMessage> {
  private place: string | undefined;
  private caught = false;

  constructor(
    private readonly fetchPage: (query: FeedQuery) => Promise<FeedPage>,
    private readonly query: FeedQuery,
  ) {
    this.place = query.after;
  }

  /**
   * Where to resume: after every page handed over in full. A reader stopped within a page gets
   * that page's messages again (from its first) when it resumes: none is skipped.
   */
  get cursor(): string | undefined {
    return this.place;
  }

  /** True once a read found nothing more committed and nothing held back (until new messages commit). */
  get caughtUp(): boolean {
    return this.caught;
  }

  /**
   * Iterating ends when the service says nothing more is committed; messages committed but held
   * back (`waiting`: a transaction older than theirs still runs on the database server) are waited
   * for, up to `waitMs`, asking again at growing intervals.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<FeedMessage> {
    const { waitMs = DEFAULT_WAIT_MS, ...query } = this.query;
    let waitedSince: number | null = null;
    let pause = 20;
    for (;;) {
      const page = await this.fetchPage({ ...query, after: this.place });
      yield* page.items;
      this.place = page.next;
      if (page.more) continue;
      if (page.waiting && waitMs > 0) {
        waitedSince ??= Date.now();
        if (Date.now() - waitedSince < waitMs) {
          await new Promise((resolve) => setTimeout(resolve, pause));
          pause = Math.min(pause * 2, 500);
          continue;
        }
      }
      this.caught = !page.waiting;
      return;
    }
  }
}

/** A feed query as `GET /v1/feed` takes it. */
export function feedQueryValues(query: FeedQuery): QueryValues {
  return { topic: query.topic, subscription: query.subscription, after: query.after, since: query.since, until: query.until, limit: query.pageSize };
}
