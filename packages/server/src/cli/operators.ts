import { about } from "./client.ts";
import { type Api, printJson } from "./context.ts";
import { table } from "./format.ts";

/**
 * `tidings operators`: named operators with roles, through a running service's API (listing them:
 * any person's key; changing them: an admin's, the admin key or an admin operator's).
 */
const operatorPath = (name: string): string => `/v1/operators/${encodeURIComponent(name)}`;

const aboutOperator = <T>(name: string, call: () => Promise<T>): Promise<T> => about("operator", name, call);

/** `tidings operators <action> [name] [role]`. */
export async function operators({ call, json }: Api, action: string, args: string[], role: string | undefined): Promise<number> {
  const name = args[0]!;
  switch (action) {
    case "list": {
      const { body } = await call("GET", "/v1/operators");
      const items = body.items as Array<{ name: string; role: string; createdAt: string }>;
      if (json) printJson(body);
      else if (items.length === 0) console.log("no operators (the admin key is the only key)");
      else console.log(table([["NAME", "ROLE", "CREATED"], ...items.map((o) => [o.name, o.role, o.createdAt])]));
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
