import type {
  AlertInfo,
  AlertPage,
  AppChanged,
  AppChanges,
  AppCreated,
  AppInfo,
  ListAlertsQuery,
  ListReconciliationsQuery,
  NewApp,
  ReconciliationInfo,
  ReconciliationPage,
  ReconciliationReport,
  RelayList,
  RelayReport,
} from "./apiTypes.ts";
import type { ResolvedHttpOptions } from "./http.ts";
import { find, operation } from "./operation.ts";

/** Alerts (a person's key: viewers read, operators act), grouped by condition and subject, with their lifecycle. */
export class AlertsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Alerts newest first: unresolved ones (open and acknowledged) unless `state` says otherwise. */
  async list(query: ListAlertsQuery = {}): Promise<AlertInfo[]> {
    return (await this.page(query)).items;
  }

  /** One page of `list`, with the cursor of the next (pass it as `cursor`). */
  page(query: ListAlertsQuery = {}): Promise<AlertPage> {
    return operation(this.o, "get", "/v1/alerts", { query }, { idempotent: true });
  }

  /** One alert, or null. */
  get(id: number): Promise<AlertInfo | null> {
    return find(this.o, "get", "/v1/alerts/{id}", { params: { id: String(id) } });
  }

  /** Acknowledges an open alert (idempotent); the caller is who, with an optional note. A `conflict` once resolved. */
  acknowledge(id: number, note?: string): Promise<AlertInfo> {
    return operation(
      this.o,
      "post",
      "/v1/alerts/{id}/acknowledge",
      { params: { id: String(id) }, body: note === undefined ? {} : { note } },
      { idempotent: true },
    );
  }

  /** Resolves an alert by hand (idempotent), with an optional note. */
  resolve(id: number, note?: string): Promise<AlertInfo> {
    return operation(this.o, "post", "/v1/alerts/{id}/resolve", { params: { id: String(id) }, body: note === undefined ? {} : { note } }, { idempotent: true });
  }
}

/** Outbox relays: their heartbeats, and (a person's key) the list of them. */
export class RelaysApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Reports a relay's counts, once, within `timeoutMs` (default: the client's), never retried. */
  async heartbeat(report: RelayReport, options: { timeoutMs?: number } = {}): Promise<void> {
    await operation(this.o, "post", "/v1/relays/heartbeat", { body: report }, { idempotent: false, timeoutMs: options.timeoutMs });
  }

  /** Every relay with its last heartbeat and whether it is `stale`. */
  list(): Promise<RelayList> {
    return operation(this.o, "get", "/v1/relays", {}, { idempotent: true });
  }

  /** Forgets a relay that is gone for good (operator): it is not awaited any more. `app` "-": the admin's own relay. */
  async forget(app: string | null, name: string): Promise<void> {
    await operation(this.o, "delete", "/v1/relays/{app}/{name}", { params: { app: app ?? "-", name } }, { idempotent: true });
  }
}

/** Producer apps (admin key): each has an API key, a check-back signing secret and a check URL. */
export class AppsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Creates an app; the answer carries its `apiKey` and `secret`, shown this once. */
  create(app: NewApp): Promise<AppCreated> {
    return operation(this.o, "post", "/v1/apps", { body: app });
  }

  async list(): Promise<AppInfo[]> {
    return (await operation(this.o, "get", "/v1/apps", {}, { idempotent: true })).items;
  }

  /** An app, or null when there is none with this name. */
  get(name: string): Promise<AppInfo | null> {
    return find(this.o, "get", "/v1/apps/{name}", { params: { name } });
  }

  /**
   * Changes an app (its check URL, read topics, `enabled`: false refuses its key until set true
   * again), or rotates its API key or check-back secret: the new one is in the answer, shown this
   * once. A rotation is not retried after a network error (a second try would rotate again);
   * other changes are.
   */
  update(name: string, changes: AppChanges): Promise<AppChanged> {
    const rotates = changes.rotateKey === true || changes.rotateSecret === true;
    return operation(this.o, "patch", "/v1/apps/{name}", { params: { name }, body: changes }, { idempotent: !rotates });
  }

  async delete(name: string): Promise<void> {
    await operation(this.o, "delete", "/v1/apps/{name}", { params: { name } }, { idempotent: true });
  }
}

/** Reconciliation runs' reports: sent by the runs (an app's key), read by people. */
export class ReconciliationsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Sends a run's report, once (not retried: a second call would store it twice), shown in the console. */
  report(report: ReconciliationReport, options: { timeoutMs?: number } = {}): Promise<ReconciliationInfo> {
    return operation(this.o, "post", "/v1/reconciliations", { body: report }, { idempotent: false, timeoutMs: options.timeoutMs });
  }

  /** Stored reports newest first, one page; `differences: true` keeps the runs that found some. */
  list(query: ListReconciliationsQuery = {}): Promise<ReconciliationPage> {
    const { differences, ...rest } = query;
    return operation(this.o, "get", "/v1/reconciliations", { query: { ...rest, differences: differences ? "true" : undefined } }, { idempotent: true });
  }

  /** One stored report with its differences, or null. */
  get(id: number): Promise<ReconciliationInfo | null> {
    return find(this.o, "get", "/v1/reconciliations/{id}", { params: { id: String(id) } });
  }
}
