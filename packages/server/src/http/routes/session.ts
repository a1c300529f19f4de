import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { notFound } from "../../domain/errors.ts";
import type { ConsoleSessions } from "../console/sessions.ts";
import { ErrorBody } from "../schemas.ts";

const SignIn = Type.Object({ adminKey: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });
type SignIn = Static<typeof SignIn>;
const Session = Type.Object({
  csrfToken: Type.String({ description: "send it as x-csrf-token on every call that changes something" }),
  expiresAt: Type.String({ format: "date-time" }),
});

/** Console sign-in and sign-out: the admin key for a session cookie. */
export function sessionRoutes(app: FastifyInstance, sessions: ConsoleSessions): void {
  const tags = ["console"];

  app.post<{ Body: SignIn }>(
    "/v1/session",
    {
      config: { auth: "public" },
      schema: {
        tags,
        summary: "Sign in to the console with the admin key: sets an HttpOnly session cookie",
        security: [],
        body: SignIn,
        response: { 201: Session, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const session = await sessions.signIn(request.body.adminKey, request, reply);
      return reply.status(201).header("cache-control", "no-store").send(session);
    },
  );

  app.get(
    "/v1/session",
    { config: { auth: "admin" }, schema: { tags, summary: "The current console session and its CSRF token", response: { 200: Session, "4xx": ErrorBody } } },
    async (request, reply) => {
      const session = sessions.sessionOf(request);
      if (!session) throw notFound("console session (this call was made with a key, not a session cookie)");
      return reply.header("cache-control", "no-store").send(session);
    },
  );

  app.delete(
    "/v1/session",
    { config: { auth: "admin" }, schema: { tags, summary: "Sign out of the console", response: { "4xx": ErrorBody } } },
    async (request, reply) => {
      await sessions.signOut(request, reply);
      return reply.status(204).send();
    },
  );
}
