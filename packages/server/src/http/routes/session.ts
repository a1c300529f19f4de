import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { invalid, notFound } from "../../domain/errors.ts";
import type { SessionRecord } from "../../store/consoleSessions.ts";
import type { ConsoleSessions } from "../console/sessions.ts";
import { ErrorBody } from "../schemas.ts";

const Key = Type.String({ minLength: 1, maxLength: 1000 });
const SignIn = Type.Object(
  {
    key: Type.Optional(Key),
    adminKey: Type.Optional({ ...Key, description: "the name `key` had before operators had keys of their own; still accepted" }),
  },
  { additionalProperties: false, description: "`key`: the admin key or an operator's key" },
);
type SignIn = Static<typeof SignIn>;
const Session = Type.Object({
  csrfToken: Type.String({ description: "send it as x-csrf-token on every call that changes something" }),
  expiresAt: Type.String({ format: "date-time" }),
  who: Type.Object(
    {
      kind: Type.Union([Type.Literal("admin"), Type.Literal("operator")]),
      name: Type.String({ description: "the operator's name, or `admin key`" }),
      role: Type.Union([Type.Literal("viewer"), Type.Literal("operator"), Type.Literal("admin")]),
    },
    { description: "who signed in, and the role that decides what the session may do" },
  ),
});

const shown = (session: SessionRecord) => ({
  csrfToken: session.csrfToken,
  expiresAt: session.expiresAt,
  who: session.operator ? { kind: "operator" as const, ...session.operator } : { kind: "admin" as const, name: "admin key", role: "admin" as const },
});

/** Console sign-in and sign-out: the admin key or an operator's key for a session cookie. */
export function sessionRoutes(app: FastifyInstance, sessions: ConsoleSessions): void {
  const tags = ["console"];

  app.post<{ Body: SignIn }>(
    "/v1/session",
    {
      config: { auth: "public" },
      schema: {
        tags,
        summary: "Sign in to the console with the admin key or an operator's key: sets an HttpOnly session cookie",
        security: [],
        body: SignIn,
        response: { 201: Session, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const field = request.body.key !== undefined ? "key" : "adminKey";
      const key = request.body.key ?? request.body.adminKey;
      if (key === undefined) throw invalid("key", "send the admin key or an operator's key as key");
      const session = await sessions.signIn(key, field, request, reply);
      return reply.status(201).header("cache-control", "no-store").send(shown(session));
    },
  );

  // Any signed-in person may see and end their own session.
  const config = { auth: "viewer" } as const;
  app.get(
    "/v1/session",
    {
      config,
      schema: { tags, summary: "The current console session: who, with which role, and its CSRF token", response: { 200: Session, "4xx": ErrorBody } },
    },
    async (request, reply) => {
      const session = sessions.sessionOf(request);
      if (!session) throw notFound("console session (this call was made with a key, not a session cookie)");
      return reply.header("cache-control", "no-store").send(shown(session));
    },
  );

  app.delete("/v1/session", { config, schema: { tags, summary: "Sign out of the console", response: { "4xx": ErrorBody } } }, async (request, reply) => {
    await sessions.signOut(request, reply);
    return reply.status(204).send();
  });
}
