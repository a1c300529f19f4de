import { type Command, Option } from "commander";
import { type Call, client, CommandError, DEFAULT_URL } from "./client.ts";

/**
 * What every command that calls the API shares: the service's address, the key, `--json`, and
 * how a failure ends the command (1: refused or unreachable; 2: bad usage, with the usage).
 */

/** Bad usage found after the parse (a value of the wrong form, a missing choice): exit 2 with the usage. */
export class UsageError extends Error {}

export interface Api {
  call: Call;
  url: string;
  json: boolean;
}

/** Commands whose own `--key` is something else (send: the message's key); their API key is `--api-key`. */
const keyIsTheirs = new WeakSet<Command>();

/** The options of a command that calls the API; `ownKey`: its `--key` means something else. */
export function apiOptions(command: Command, ownKey = false): Command {
  command.option("--url <url>", `the service (env TIDINGS_URL; default ${DEFAULT_URL})`);
  if (ownKey) {
    keyIsTheirs.add(command);
    command.option("--api-key <key>", "the API key (env TIDINGS_KEY)");
  } else {
    command.option("--key <key>", "the API key: an app's, an operator's or the admin key (env TIDINGS_KEY)");
    command.addOption(new Option("--api-key <key>").hideHelp());
  }
  // The name these commands took first; kept so that scripts written for it still work.
  command.addOption(new Option("--admin-key <key>").hideHelp());
  return command.option("--json", "print the API's answer as JSON");
}

/** The command and those it sits under, innermost first (options after a command are its own). */
function lineage(command: Command): Command[] {
  const chain: Command[] = [];
  for (let c: Command | null = command; c; c = c.parent) chain.push(c);
  return chain;
}

function optionOf(command: Command, name: string): unknown {
  for (const c of lineage(command)) {
    if (name === "key" && keyIsTheirs.has(c)) continue;
    const value = c.getOptionValue(name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** `tidings apps create`, as messages name the command. */
export const commandName = (command: Command): string =>
  lineage(command)
    .reverse()
    .map((c) => c.name())
    .join(" ");

/** The API as the command's options and the environment say; without a key, bad usage. */
export function apiOf(command: Command, env: NodeJS.ProcessEnv = process.env): Api {
  const url = (optionOf(command, "url") as string | undefined) || env.TIDINGS_URL || DEFAULT_URL;
  const key = [optionOf(command, "apiKey"), optionOf(command, "key"), optionOf(command, "adminKey"), env.TIDINGS_KEY, env.TIDINGS_ADMIN_KEY].find(
    (k): k is string => typeof k === "string" && k !== "",
  );
  if (!key) throw new UsageError("--key or TIDINGS_KEY is required (an app's key, an operator's, or the admin key)");
  return { call: client(url, key), url, json: optionOf(command, "json") === true };
}

/**
 * Runs a command's work and sets the exit code: what it returns (0 by default), 1 on a
 * refusal (the API's message and field), 2 with the usage on bad usage.
 */
export async function run(command: Command, work: () => Promise<unknown>): Promise<void> {
  try {
    const code = await work();
    process.exitCode = typeof code === "number" ? code : 0;
  } catch (error) {
    if (error instanceof UsageError) command.error(`${commandName(command)}: ${error.message}`, { exitCode: 2, code: "tidings.usage" });
    if (!(error instanceof CommandError)) throw error;
    console.error(`${commandName(command)}: ${error.message}`);
    process.exitCode = 1;
  }
}

/** The same, for a command that calls the API. */
export const runApi = (command: Command, work: (api: Api) => Promise<unknown>): Promise<void> => run(command, () => work(apiOf(command)));

/** Prints the API's answer as scripts read it. */
export const printJson = (value: unknown): void => console.log(JSON.stringify(value, null, 2));
