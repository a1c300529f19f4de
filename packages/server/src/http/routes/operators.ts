import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { conflict, notFound } from "../../domain/errors.ts";
import { ROLES, type Principal } from "../../domain/roles.ts";
import { createOperator, deleteOperator, getOperator, listOperators, rotateOperatorKey, setOperatorRole } from "../../store/operators.ts";
import { hashKey, newOperatorKey } from "../auth.ts";
import type { RouteServices } from "../routeServices.ts";
import { noteAudit } from "../audit.ts";
import { configChange } from "../../domain/audit.ts";
import { ErrorBody, Name, NameParams } from "../schemas.ts";

const Role = Type.Union(
  ROLES.map((r) => Type.Literal(r)),
  { description: "viewer: reads everything; operator: also acts on messages, alerts and re-send jobs; admin: also changes the configuration" },
);
const CreateOperator = Type.Object({ name: Name, role: Role }, { additionalProperties: false });
const PatchOperator = Type.Object(
  {
    role: Type.Optional(Role),
    rotateKey: Type.Optional(Type.Literal(true, { description: "issue a new key (shown once); the old one and its sessions end" })),
  },
  { additionalProperties: false, minProperties: 1 },
);
const Operator = Type.Object(
  {
    name: Type.String(),
    role: Role,
    createdAt: Type.String({ format: "date-time" }),
    updatedAt: Type.String({ format: "date-time" }),
  },
  { $id: "Operator" },
);
const OperatorWithKey = Type.Intersect([Operator, Type.Object({ key: Type.Optional(Type.String({ description: "the operator's key, shown this once" })) })]);

/** Whether the caller is the operator named `name` (who may not remove or demote themselves). */
const isSelf = (principal: Principal, name: string): boolean => principal.kind === "operator" && principal.name === name;

/**
 * Named operators with roles and keys of their own: read by every person (names and roles, never
 * a key: keys are stored hashed and shown once, to the admin who issues them), changed by admins.
 */
export function operatorRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["operators"];
  const config = { auth: "admin" } as const;
  const read = { auth: "viewer" } as const;

  app.post<{ Body: Static<typeof CreateOperator> }>(
    "/v1/operators",
    {
      config: { ...config, audit: configChange("operator.create") },
      schema: {
        tags,
        summary: "Add an operator with a role; their key is shown once",
        body: CreateOperator,
        response: { 201: OperatorWithKey, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const key = newOperatorKey();
      const created = await createOperator(s.db, request.body.name, request.body.role, hashKey(key));
      if (!created) throw conflict(`an operator named ${request.body.name} exists`);
      return reply.status(201).send({ ...created, key });
    },
  );

  app.get(
    "/v1/operators",
    { config: read, schema: { tags, summary: "List operators and their roles", response: { 200: Type.Object({ items: Type.Array(Operator) }) } } },
    async () => ({
      items: await listOperators(s.db),
    }),
  );

  app.get<{ Params: NameParams }>(
    "/v1/operators/:name",
    { config: read, schema: { tags, summary: "Get an operator", params: NameParams, response: { 200: Operator, "4xx": ErrorBody } } },
    async (request) => {
      const found = await getOperator(s.db, request.params.name);
      if (!found) throw notFound(`operator ${request.params.name}`);
      return found;
    },
  );

  app.patch<{ Params: NameParams; Body: Static<typeof PatchOperator> }>(
    "/v1/operators/:name",
    {
      config: { ...config, audit: configChange("operator.update") },
      schema: {
        tags,
        summary: "Change an operator's role, or rotate their key (shown once; their console sessions end)",
        params: NameParams,
        body: PatchOperator,
        response: { 200: OperatorWithKey, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { role, rotateKey } = request.body;
      // An admin who demotes themselves could not undo it: another admin (or the admin key) must.
      if (role !== undefined && role !== "admin" && isSelf(request.principal, name)) {
        throw conflict("you cannot lower your own role: another admin, or the admin key, can");
      }
      noteAudit(request, { before: await getOperator(s.db, name) });
      let changed = role === undefined ? await getOperator(s.db, name) : await setOperatorRole(s.db, name, role);
      const key = rotateKey ? newOperatorKey() : undefined;
      if (changed && key) changed = await rotateOperatorKey(s.db, name, hashKey(key));
      // Keys this node looked up before the change are read again (the new role applies at once).
      s.auth.forget();
      if (!changed) throw notFound(`operator ${name}`);
      return { ...changed, ...(key ? { key } : {}) };
    },
  );

  app.delete<{ Params: NameParams }>(
    "/v1/operators/:name",
    {
      config: { ...config, audit: configChange("operator.delete") },
      schema: {
        tags,
        summary: "Remove an operator: their key stops working and their console sessions end",
        params: NameParams,
        response: { "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      if (isSelf(request.principal, request.params.name)) throw conflict("you cannot remove yourself: another admin, or the admin key, can");
      const removed = await deleteOperator(s.db, request.params.name);
      noteAudit(request, { before: removed });
      s.auth.forget();
      if (!removed) throw notFound(`operator ${request.params.name}`);
      return reply.status(204).send();
    },
  );
}
