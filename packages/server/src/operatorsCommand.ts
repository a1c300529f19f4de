import { parseArgs } from "node:util";
import { client, CommandError, serviceUrl, type Call } from "./operatorClient.ts";

/**
 * `tidings operators`: named operators with roles, through a running service's API (an admin's
 * key: the admin key or an admin operator's).
 */
export const OPERATORS_USAGE = `usage: tidings operators [list] [--json]
       tidings operators add <name> --role viewer|operator|admin
       tidings operators role <name> viewer|operator|admin
       tidings operators rotate-key <name>
       tidings operators remove <name>
         [--url URL] [--admin-key KEY]

  list         the operators and their roles
  add          a new operator; their key is printed once
  role         change an operator's role (at once, console sessions included)
  rotate-key   a new key for the operator, printed once; the old one and their console sessions end
  remove       the operator's key stops working and their console sessions end

  --url URL          the service (env TIDINGS_URL, default http://127.0.0.1:7400)
  --admin-key KEY    the admin key or an admin operator's key (env TIDINGS_ADMIN_KEY)`;

const operatorPath = (name: string): string => `/v1/operators/${encodeURIComponent(name)}`;

/** The action's positionals: how many names/values it takes after itself. */
const ARITY: Record<string, number> = { list: 0, add: 1, role: 2, "rotate-key": 1, remove: 1 };

async function aboutOperator<T>(name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof CommandError && error.status === 404) throw new CommandError(`no operator named ${name}`, 404);
    throw error;
  }
}

async function act(call: Call, action: string, args: string[], role: string | undefined, json: boolean): Promise<number> {
  const name = args[0]!;
  switch (action) {
    case "list": {
      const { body } = await call("GET", "/v1/operators");
      const items = body.items as Array<{ name: string; role: string; createdAt: string }>;
      if (json) console.log(JSON.stringify(body, null, 2));
      else if (items.length === 0) console.log("no operators (the admin key is the only key)");
      else {
        const width = Math.max(4, ...items.map((o) => o.name.length));
        console.log(["NAME".padEnd(width), "ROLE    ", "CREATED"].join("  "));
        for (const o of items) console.log([o.name.padEnd(width), o.role.padEnd(8), o.createdAt].join("  "));
      }
      return 0;
    }
    case "add": {
      const { body } = await call("POST", "/v1/operators", { name, role });
      console.log(`${name} (${body.role}) added; their key, shown this once:\n${body.key}`);
      return 0;
    }
    case "role": {
      const { body } = await aboutOperator(name, () => call("PATCH", operatorPath(name), { role: args[1] }));
      console.log(`${name} is now ${body.role}`);
      return 0;
    }
    case "rotate-key": {
      const { body } = await aboutOperator(name, () => call("PATCH", operatorPath(name), { rotateKey: true }));
      console.log(`${name}'s new key, shown this once (the old one no longer works):\n${body.key}`);
      return 0;
    }
    default:
      await aboutOperator(name, () => call("DELETE", operatorPath(name)));
      console.log(`${name} removed`);
      return 0;
  }
}

const parseOperatorsArgs = (argv: string[]) =>
  parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      "admin-key": { type: "string" },
      role: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });

/** Runs `tidings operators …`; resolves to the exit code (2 on bad usage, 1 on a refusal). */
export async function runOperatorsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const usage = (problem: string) => {
    console.error(`tidings operators: ${problem}\n\n${OPERATORS_USAGE}`);
    return 2;
  };
  let parsed: ReturnType<typeof parseOperatorsArgs>;
  try {
    parsed = parseOperatorsArgs(argv);
  } catch (error) {
    return usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(OPERATORS_USAGE);
    return 0;
  }
  const [action = "list", ...args] = positionals;
  const arity = ARITY[action];
  if (arity === undefined) return usage(`unknown action "${action}"`);
  if (args.length !== arity) return usage(`${action} takes ${arity === 0 ? "nothing more" : arity === 1 ? "a name" : "a name and a role"}`);
  if (action === "add" && !values.role) return usage("add needs --role viewer|operator|admin");
  const key = values["admin-key"] ?? env.TIDINGS_ADMIN_KEY;
  if (!key) return usage("--admin-key or TIDINGS_ADMIN_KEY is required");
  try {
    return await act(client(serviceUrl(values.url, env), key), action, args, values.role, values.json === true);
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    console.error(`tidings operators: ${error.message}`);
    return 1;
  }
}
