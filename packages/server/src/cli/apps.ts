import { about } from "./client.ts";
import { type Api, printJson, UsageError } from "./context.ts";
import { orNone, table } from "./format.ts";
import { defined, list } from "./values.ts";

/** `tidings apps [list|create|update|rotate-key|delete]`: producer apps, their keys and secrets. */

interface App {
  name: string;
  checkUrl: string | null;
  readTopics: string[];
  enabled: boolean;
  createdAt: string;
  apiKey?: string;
  secret?: string;
}

const appPath = (name: string): string => `/v1/apps/${encodeURIComponent(name)}`;
const aboutApp = <T>(name: string, call: () => Promise<T>): Promise<T> => about("app", name, call);

/** An app's key and secret, shown once: the lines that say so. */
function credentials(app: App): string[] {
  return [
    ...(app.apiKey ? [`  API key (shown this once):            ${app.apiKey}`] : []),
    ...(app.secret ? [`  check-back secret (shown this once):  ${app.secret}`] : []),
  ];
}

export async function listApps({ call, json }: Api): Promise<void> {
  const { body } = await call("GET", "/v1/apps");
  const items = body.items as App[];
  if (json) printJson(body);
  else if (items.length === 0) console.log("no apps");
  else {
    const rows = items.map((a) => [a.name, a.enabled ? "enabled" : "disabled", orNone(a.checkUrl), a.readTopics.join(",") || "-", a.createdAt]);
    console.log(table([["NAME", "STATE", "CHECK URL", "READ TOPICS", "CREATED"], ...rows]));
  }
}

export async function createApp({ call, json }: Api, name: string, options: { checkUrl?: string; readTopics?: string }): Promise<void> {
  const app = (await call("POST", "/v1/apps", defined({ name, checkUrl: options.checkUrl, readTopics: list(options.readTopics) }))).body as unknown as App;
  if (json) printJson(app);
  else console.log([`app ${app.name} created`, ...credentials(app)].join("\n"));
}

async function patch({ call, json }: Api, name: string, body: Record<string, unknown>, done: string): Promise<void> {
  const app = (await aboutApp(name, () => call("PATCH", appPath(name), body))).body as unknown as App;
  if (json) printJson(app);
  else console.log([`app ${app.name} ${done}${app.enabled ? "" : " (disabled)"}`, ...credentials(app)].join("\n"));
}

export async function updateApp(
  api: Api,
  name: string,
  options: { checkUrl?: string | false; readTopics?: string; enable?: boolean; disable?: boolean },
): Promise<void> {
  if (options.enable && options.disable) throw new UsageError("--enable or --disable, not both");
  const body = defined({
    // --no-check-url: none.
    checkUrl: options.checkUrl === false ? null : options.checkUrl,
    readTopics: list(options.readTopics),
    enabled: options.enable ? true : options.disable ? false : undefined,
  });
  if (Object.keys(body).length === 0) throw new UsageError("nothing to change: give an option");
  await patch(api, name, body, "updated");
}

export const rotateKey = (api: Api, name: string, options: { secret?: boolean }): Promise<void> =>
  patch(api, name, { rotateKey: true, ...(options.secret ? { rotateSecret: true } : {}) }, "has a new key (the old one no longer works)");

export async function deleteApp({ call, json }: Api, name: string): Promise<void> {
  await aboutApp(name, () => call("DELETE", appPath(name)));
  if (json) printJson({ deleted: name });
  else console.log(`app ${name} deleted`);
}
