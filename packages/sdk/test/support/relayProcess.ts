import { spawnTidings, type TidingsProcess } from "@tidings/testkit/service";

export type RelayProcess = TidingsProcess;

/** Runs `tidings relay` as a real child process, resolved once it says it is running. */
export async function spawnRelay(options: { databaseUrl: string; url: string; apiKey: string; args?: string[] }, timeoutMs = 20_000): Promise<RelayProcess> {
  return spawnTidings(["relay", "--database-url", options.databaseUrl, "--url", options.url, "--api-key", options.apiKey, ...(options.args ?? [])], {
    ready: /tidings relay is running/,
    timeoutMs,
  });
}
