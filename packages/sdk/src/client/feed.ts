import type { FeedMessage, FeedPage, FeedQuery } from "./apiTypes.ts";

/**
 * The service's committed messages in commit order, read page by page as an async iterator.
 * Iterating ends once everything committed so far has been read; `cursor` is where to resume
 * (pass it as `after`), later or in another process.
 */
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

  /** True once a read found nothing more committed (until new messages commit). */
  get caughtUp(): boolean {
    return this.caught;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<FeedMessage> {
    for (;;) {
      const page = await this.fetchPage({ ...this.query, after: this.place });
      yield* page.items;
      this.place = page.next;
      if (!page.more) {
        this.caught = true;
        return;
      }
    }
  }
}

/** The query string of `GET /v1/feed` for `query`. */
export function feedQueryString(query: FeedQuery): string {
  const params = new URLSearchParams();
  const time = (t: string | Date) => (t instanceof Date ? t.toISOString() : t);
  if (query.topic !== undefined) params.set("topic", query.topic);
  if (query.subscription !== undefined) params.set("subscription", query.subscription);
  if (query.after !== undefined) params.set("after", query.after);
  if (query.since !== undefined) params.set("since", time(query.since));
  if (query.until !== undefined) params.set("until", time(query.until));
  if (query.pageSize !== undefined) params.set("limit", String(query.pageSize));
  return params.toString();
}
