/**
 * The last touches of `/openapi.json`, so that other tools take it as it is (a linter's
 * recommended rules, client generators): each operation gets an `operationId` made from its
 * method and path, and the answers every route can give without saying so — a refusal (4XX,
 * the one error body: every route validates its input, and those that need a key refuse a
 * missing or wrong one), and a success without a body where none is declared.
 */

import { ErrorBody } from "./schemas.ts";

type Json = Record<string, unknown>;

/** The name of the error body's component. */
const ERROR_COMPONENT = ErrorBody.$id ?? "Error";

const METHODS = ["get", "put", "post", "patch", "delete", "head", "options"] as const;

const capital = (word: string): string => word.charAt(0).toUpperCase() + word.slice(1);
const camel = (segment: string): string => segment.split(/[-_.]/).filter(Boolean).map(capital).join("");

/**
 * `get /v1/subscriptions/{name}/health` → `getSubscriptionsByNameHealth`; the API's version
 * prefix is left out, `/` is `getRoot`.
 */
export function operationIdOf(method: string, path: string): string {
  const parts = path
    .split("/")
    .filter((s) => s !== "" && s !== "v1")
    .map((s) => (s.startsWith("{") ? `By${camel(s.slice(1, -1))}` : s === "*" ? "Any" : camel(s)));
  return method.toLowerCase() + (parts.length === 0 ? "Root" : parts.join(""));
}

/**
 * A choice among object schemas by one field, written for the validator as `allOf` of
 * `if {type: x} then {schema x}` (its errors then name the chosen type's field), is described as
 * the `oneOf` it amounts to: generators type it as the union of the choices.
 */
function describeChoices(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) describeChoices(item);
    return;
  }
  if (typeof node !== "object" || node === null) return;
  const schema = node as Json;
  const allOf = schema.allOf;
  if (Array.isArray(allOf) && allOf.length > 0 && allOf.every((c) => typeof c === "object" && c !== null && "if" in c && "then" in c)) {
    delete schema.allOf;
    delete schema.properties;
    delete schema.required;
    schema.oneOf = allOf.map((c) => (c as Json).then);
  }
  for (const value of Object.values(schema)) describeChoices(value);
}

export function finishOpenApi(document: Json): Json {
  describeChoices(document.paths);
  const paths = (document.paths ?? {}) as Record<string, Json>;
  // The error body every refusal carries, one component that each operation refers to.
  const components = (document.components ?? {}) as Json;
  const { $id: _id, ...errorBody } = ErrorBody;
  components.schemas = { ...(components.schemas as Json | undefined), [ERROR_COMPONENT]: errorBody };
  document.components = components;
  const errorText = JSON.stringify(errorBody);
  const errorRef = { $ref: `#/components/schemas/${ERROR_COMPONENT}` };
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const operation = item[method] as Json | undefined;
      if (!operation) continue;
      operation.operationId ??= operationIdOf(method, path);
      operation.responses ??= {};
      const responses = operation.responses as Record<string, Json>;
      // A refusal written out in full is the error component.
      for (const [code, response] of Object.entries(responses)) {
        const json = (response.content as Record<string, Json> | undefined)?.["application/json"];
        if (/^[45]/.test(code) && json && JSON.stringify(json.schema) === errorText) json.schema = errorRef;
      }
      const codes = Object.keys(responses);
      if (!codes.some((c) => c.startsWith("2"))) responses["204"] = { description: "Done" };
      if (!codes.some((c) => c.startsWith("4"))) {
        responses["4XX"] = {
          description: "Refused: the error names the field at fault, or says what is missing (a key, a role)",
          content: { "application/json": { schema: errorRef } },
        };
      }
    }
  }
  return document;
}
