import type { FastifyInstance } from "fastify";
import { conflict, notFound } from "../../domain/errors.ts";
import { newSigningSecret } from "../../transports/signature.ts";
import { createApp, deleteApp, getApp, listApps, updateApp } from "../../store/apps.ts";
import { hashKey, newApiKey } from "../auth.ts";
import type { RouteServices } from "../routeServices.ts";
import { noteAudit } from "../audit.ts";
import { configChange } from "../../domain/audit.ts";
import { App, AppChanged, AppCreated, CreateApp, ErrorBody, NameParams, PatchApp } from "../schemas.ts";
import { Type } from "@sinclair/typebox";

export function appRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["apps"];
  // Reading apps is for every person; changing them (and their keys) for admins.
  const config = { auth: "admin" } as const;
  const read = { auth: "viewer" } as const;

  app.post<{ Body: CreateApp }>(
    "/v1/apps",
    {
      config: { ...config, audit: configChange("app.create") },
      schema: {
        tags,
        summary: "Create a producer app; its API key and secret are shown once",
        body: CreateApp,
        response: { 201: AppCreated, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const checkUrl = request.body.checkUrl ? s.checkEndpointUrl(request.body.checkUrl, "checkUrl") : null;
      const apiKey = newApiKey();
      const secret = newSigningSecret();
      const created = await createApp(s.db, request.body.name, hashKey(apiKey), secret, checkUrl, request.body.readTopics ?? []);
      if (!created) throw conflict(`the app name ${request.body.name} is taken (names of deleted apps are not reused)`);
      return reply.status(201).send({ ...created, apiKey, secret });
    },
  );

  app.get("/v1/apps", { config: read, schema: { tags, summary: "List apps", response: { 200: Type.Object({ items: Type.Array(App) }) } } }, async () => ({
    items: await listApps(s.db),
  }));

  app.get<{ Params: NameParams }>(
    "/v1/apps/:name",
    { config: read, schema: { tags, summary: "Get an app", params: NameParams, response: { 200: App, "4xx": ErrorBody } } },
    async (request) => {
      const found = await getApp(s.db, request.params.name);
      if (!found) throw notFound(`app ${request.params.name}`);
      return found;
    },
  );

  app.patch<{ Params: NameParams; Body: PatchApp }>(
    "/v1/apps/:name",
    {
      config: { ...config, audit: configChange("app.update") },
      schema: {
        tags,
        summary: "Change an app's check URL or read topics, disable or enable it, or rotate its key or secret (shown once)",
        params: NameParams,
        body: PatchApp,
        response: { 200: AppChanged, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const { checkUrl, readTopics, enabled, rotateKey, rotateSecret } = request.body;
      const apiKey = rotateKey ? newApiKey() : undefined;
      const secret = rotateSecret ? newSigningSecret() : undefined;
      const patch = {
        ...(checkUrl === undefined ? {} : { checkUrl: checkUrl === null ? null : s.checkEndpointUrl(checkUrl, "checkUrl") }),
        ...(readTopics === undefined ? {} : { readTopics }),
        ...(enabled === undefined ? {} : { enabled }),
        ...(apiKey ? { keyHash: hashKey(apiKey) } : {}),
        ...(secret ? { secret } : {}),
      };
      noteAudit(request, { before: await getApp(s.db, request.params.name) });
      const updated = await updateApp(s.db, request.params.name, patch);
      // Keys this node looked up before the change (a disabled app's, a rotated one) are read again.
      s.auth.forget();
      if (!updated) throw notFound(`app ${request.params.name}`);
      return { ...updated, ...(apiKey ? { apiKey } : {}), ...(secret ? { secret } : {}) };
    },
  );

  app.delete<{ Params: NameParams }>(
    "/v1/apps/:name",
    {
      config: { ...config, audit: configChange("app.delete") },
      schema: { tags, summary: "Delete an app (its key stops working; its messages stay)", params: NameParams },
    },
    async (request, reply) => {
      noteAudit(request, { before: await getApp(s.db, request.params.name) });
      if (!(await deleteApp(s.db, request.params.name))) throw notFound(`app ${request.params.name}`);
      s.auth.forget();
      return reply.status(204).send();
    },
  );
}
