import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { SMTPServer } from "smtp-server";
import type { Received } from "@tidings/testkit/receiver";

// What the tests of notifications receive them with: a real SMTP server, and the Standard
// Webhooks library checking a webhook channel's signature.

/** A mail as the local SMTP server got it. */
interface Mail {
  from: string;
  to: string[];
  user: string | null;
  raw: string;
}

/** A real SMTP server on a free local port (plain, AUTH allowed without TLS), keeping what it receives. */
export async function startSmtp(credentials: { user: string; pass: string }): Promise<{ port: number; mails: Mail[]; close(): Promise<void> }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    authOptional: false,
    onAuth(auth, _session, callback) {
      if (auth.username === credentials.user && auth.password === credentials.pass) callback(null, { user: auth.username });
      else callback(new Error("invalid username or password"));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          user: (session.user as string | undefined) ?? null,
          raw: Buffer.concat(chunks).toString("utf8"),
        });
        callback();
      });
    },
  });
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A mail's text with quoted-printable soft breaks and escapes undone. */
export const decoded = (raw: string) =>
  raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));

/** A webhook channel's notification, its signature checked by the Standard Webhooks library (which throws on a bad one). */
export const verify = (secret: string, r: Received) =>
  new Webhook(secret).verify(r.body, {
    "webhook-id": String(r.headers["webhook-id"]),
    "webhook-timestamp": String(r.headers["webhook-timestamp"]),
    "webhook-signature": String(r.headers["webhook-signature"]),
  }) as {
    type: string;
    title: string;
    text: string;
    events: { id: number; alertId: number; event: string; condition: string; subject: string; nextStep: string; url: string }[];
    counts: { condition: string; event: string; count: number }[];
  };
