import { Command, Option } from "commander";
import { apiOptions, run, runApi } from "./context.ts";

/**
 * The `tidings` command: every subcommand, its arguments and its help. The work of each is
 * imported when it runs, so that a command which only calls the API loads none of the service
 * (0.8 s to start through tsx instead of 2.7 s) and `--help` loads nothing at all.
 */

/** What only the entry point may start (it alone imports the service's runtime). */
export interface ServiceCommands {
  serve(): Promise<number>;
  migrate(): Promise<number>;
}

const ENVIRONMENT = `
Commands that call a running service take --url (env TIDINGS_URL; default http://127.0.0.1:7400),
--key (env TIDINGS_KEY; the admin key, an operator's or an app's) and --json, before or after the
command; a .env file in the working directory is read first (the environment wins over it).
serve and migrate read TIDINGS_PORT (7400), TIDINGS_HOST (127.0.0.1), TIDINGS_DATA_DIR (./.tidings),
DATABASE_URL (none: embedded PostgreSQL), TIDINGS_ADMIN_KEY, TIDINGS_LOG_LEVEL (info); see the README.
Exit codes: 0 done, 1 refused or failed (the API's message and field), 2 bad usage.`;

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** A command that hands its arguments, unparsed, to a parser of its own (the SDK's sidecars). */
function passThrough(program: Command, name: string, description: string, start: (args: string[]) => Promise<number>): void {
  program
    .command(name)
    .description(description)
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .argument("[args...]")
    .action((args: string[], _options, command: Command) => run(command, () => start(args)));
}

export function buildProgram(service: ServiceCommands): Command {
  const program = new Command("tidings")
    .description("Tidings: reliable messaging between services that each own their database.")
    .usage("<command> [options]")
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    // The command list names each command and its arguments; its options are in its own help.
    .configureHelp({
      helpWidth: 120,
      subcommandTerm: (c) => [c.name(), ...c.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`))].join(" "),
    })
    .addHelpText("after", ENVIRONMENT);
  apiOptions(program);
  program.helpCommand("help [command]", "the help of a command");

  program
    .command("serve")
    .description("run the service (API, dispatcher, console)")
    .action((_options, command: Command) => run(command, service.serve));
  program
    .command("migrate")
    .description("apply the database migrations and exit")
    .action((_options, command: Command) => run(command, service.migrate));
  passThrough(program, "relay", "ship a producer database's outbox rows to the service (relay --help)", async (args) =>
    (await import("@tidings/sdk/relay-cli")).runRelayCli(args),
  );
  passThrough(program, "reconcile", "reconcile a consumer's inbox or a producer's outbox with the service (reconcile --help)", async (args) =>
    (await import("@tidings/sdk/reconcile-cli")).runReconcileCli(args),
  );
  program
    .command("listen")
    .description("a local receiver that prints each delivery and checks its signature")
    .option("--port <n>", "where to listen (0: any free port)", "7401")
    .option("--host <host>", "the address to listen on", "127.0.0.1")
    .option("--secret <whsec>", "the subscription's signing secret: a bad or stale signature is answered 401 (env TIDINGS_LISTEN_SECRET)")
    .option("--status <n>", "the status good deliveries are answered with (e.g. 500 to see retries)", "200")
    .option("--json", "one JSON object per delivery instead of a line")
    .action((options, command: Command) => run(command, async () => (await import("./listen.ts")).runListen(options)));

  const send = program
    .command("send")
    .description("send a message; prints its id")
    .argument("<topic>")
    .option("--data <json>", "the payload, JSON")
    .option("--data-file <file>", "the payload from a JSON file (without --data or --data-file: from stdin)")
    .option("-k, --key <key>", "the message's key (business id; orders deliveries on subscriptions ordered by key)")
    .option("--id <id>", "the message's id (idempotency key; default: generated)")
    .option("--tag <tag>", "the message's tag")
    .option("-H, --header <name=value>", "a header delivered with the message (repeatable)", collect)
    .option("--delay <duration>", "deliver after this long (30s, 5m, 2h)")
    .option("--deliver-at <time>", "deliver at this time (ISO 8601 with a zone)");
  apiOptions(send, true).action((topic: string, options, command: Command) =>
    runApi(command, async (api) => (await import("./messages.ts")).send(api, topic, options)),
  );

  apiOptions(program.command("get").description("a message, its deliveries and their attempts").argument("<messageId>", "its id, or <app>/<id>")).action(
    (id: string, _options, command: Command) => runApi(command, async (api) => (await import("./messages.ts")).get(api, id)),
  );

  apiOptions(
    program
      .command("list")
      .description("search messages, newest first (--cursor: the next page)")
      .option("--topic <topic>")
      .option("-k, --message-key <key>", "the messages of this business key")
      .option("--tag <tag>")
      .option("--app <app>", "the messages of this app")
      .option("--id <id>", "a message id, or <app>/<id>")
      .option("--state <state>", "prepared, committed, rolled_back or in_doubt")
      .option("--subscription <name>", "the messages with a delivery to this subscription")
      .option("--delivery-state <state>", "… in this state: pending, delivered or dead")
      .option("--created-after <time>")
      .option("--created-before <time>")
      .option("--limit <n>", "messages per page (1-1000; default 50)")
      .option("--cursor <cursor>", "the page after the one that printed it"),
  ).action((options, command: Command) => runApi(command, async (api) => (await import("./messages.ts")).list(api, options)));

  apiOptions(
    program
      .command("tail")
      .description("follow new messages and delivery changes, one line each, until Ctrl-C")
      .option("--topic <topic>", "only this topic's messages and their deliveries")
      .option("--since <time>", "start from this time (ISO 8601, or a duration ago: 10m); default now")
      .option("--interval <duration>", "how often to ask the service", "1s"),
  ).action((options, command: Command) => runApi(command, async (api) => (await import("./tail.ts")).tail(api, options)));

  apiOptions(
    program
      .command("resend")
      .description("deliver a message again, with a fresh retry cycle")
      .argument("<messageId>")
      .option("--subscription <name>", "to this subscription only (default: every one)"),
  ).action((id: string, options, command: Command) => runApi(command, async (api) => (await import("./messages.ts")).resend(api, id, options)));

  const jobOptions = (command: Command) =>
    apiOptions(command.option("--batch-size <n>", "deliveries per batch (default 500)").option("--no-wait", "print the job's id and return at once"));
  jobOptions(
    program
      .command("resend-dead")
      .description("re-send a subscription's dead deliveries as a job, following its progress")
      .argument("<subscription>")
      .option("--limit <n>", "at most this many"),
  ).action((name: string, options, command: Command) => runApi(command, async (api) => (await import("./jobs.ts")).resendDead(api, name, options)));
  jobOptions(
    program
      .command("recover")
      .description("re-send a subscription's dead and failed deliveries of a window, following the job")
      .argument("<subscription>")
      .option("--since <time>", "messages created from this time (ISO 8601 with a zone, or a duration ago: 6h)")
      .option("--until <time>", "… and before this one (default: now)"),
  ).action((name: string, options, command: Command) => runApi(command, async (api) => (await import("./jobs.ts")).recover(api, name, options)));
  apiOptions(program.command("retry-pending").description("make a subscription's deliveries waiting for a retry due now").argument("<subscription>")).action(
    (name: string, _options, command: Command) => runApi(command, async (api) => (await import("./jobs.ts")).retryPending(api, name)),
  );

  const jobs = program.command("jobs").description("the re-send and recovery jobs (list, show)");
  apiOptions(jobs.command("list", { isDefault: true }).description("the 20 newest jobs").option("--subscription <name>", "of this subscription")).action(
    (options, command: Command) => runApi(command, async (api) => (await import("./jobs.ts")).listJobs(api, options)),
  );
  apiOptions(
    jobs
      .command("show")
      .description("a job and its progress (--follow: until it ends)")
      .argument("<id>")
      .option("--follow", "follow its progress until it ends"),
  ).action((id: string, options, command: Command) => runApi(command, async (api) => (await import("./jobs.ts")).showJob(api, id, options)));

  addAppCommands(program);
  addSubscriptionCommands(program);
  addOperatorCommands(program);

  apiOptions(
    program
      .command("doctor")
      .description("check the service, its database, the subscriptions' endpoints and the clock")
      .option("--timeout <duration>", "how long each endpoint may take to answer", "3s"),
  ).action((options, command: Command) => runApi(command, async (api) => (await import("./doctor.ts")).doctor(api, options)));
  return program;
}

function addAppCommands(program: Command): void {
  const apps = program.command("apps").description("producer apps and their keys (list, create, update, rotate-key, delete)");
  const load = () => import("./apps.ts");
  apiOptions(apps.command("list", { isDefault: true }).description("the apps")).action((_options, command: Command) =>
    runApi(command, async (api) => (await load()).listApps(api)),
  );
  const appFields = (command: Command) =>
    command
      .option("--check-url <url>", "where its prepared messages are checked back")
      .option("--read-topics <topics>", "topics (comma-separated) whose messages it may also read");
  apiOptions(appFields(apps.command("create").description("a new app; its key and secret are printed once").argument("<name>"))).action(
    (name: string, options, command: Command) => runApi(command, async (api) => (await load()).createApp(api, name, options)),
  );
  apiOptions(
    appFields(apps.command("update").description("change an app's check URL, read topics, or enable or disable it").argument("<name>"))
      .option("--no-check-url", "no check URL")
      .option("--enable", "enable it")
      .option("--disable", "disable it: its key is refused until enabled"),
  ).action((name: string, options, command: Command) => runApi(command, async (api) => (await load()).updateApp(api, name, options)));
  apiOptions(
    apps
      .command("rotate-key")
      .description("a new API key for the app (the old one stops working), printed once")
      .argument("<name>")
      .option("--secret", "a new check-back signing secret too"),
  ).action((name: string, options, command: Command) => runApi(command, async (api) => (await load()).rotateKey(api, name, options)));
  apiOptions(apps.command("delete").description("delete an app: its key stops working, its messages stay").argument("<name>")).action(
    (name: string, _options, command: Command) => runApi(command, async (api) => (await load()).deleteApp(api, name)),
  );
}

function addSubscriptionCommands(program: Command): void {
  const subscriptions = program.command("subscriptions").description("subscriptions (list: a table; create, update, delete)");
  const load = () => import("./subscriptions.ts");
  apiOptions(
    subscriptions
      .command("list", { isDefault: true })
      .description("a table: targets, ordering, limits, circuit states, backlogs")
      .option("--topic <topic>", "those of this topic"),
  ).action((options, command: Command) => runApi(command, async (api) => (await load()).listSubscriptions(api, options)));
  const policy = (command: Command) =>
    command
      .option("--topic <topic>")
      .option("--endpoint <url>", "deliver to this HTTP URL")
      .option("-H, --header <name=value>", "a header sent with each delivery (repeatable)", collect)
      .option("--tags <tags>", "only messages with one of these tags (comma-separated)")
      .option("--retry <schedule>", "the retry schedule: durations, comma-separated (1m,5m,1h)")
      .option("--max-attempts <n>")
      .option("--ordering <ordering>", "none, or key: a key's messages one at a time, in order")
      .option("--on-dead <policy>", "with ordering key: block or skip")
      .option("--rate-limit <n>", "attempts per second")
      .option("--max-in-flight <n>", "deliveries in flight at once")
      .option("--pending-age-alert <duration>", "an alert when the oldest pending delivery waits longer than this (15m); off: none; default: the service's")
      .option("--body <json>", "more fields of the API's body, as JSON (a broker endpoint, the circuit breaker)");
  apiOptions(
    policy(subscriptions.command("create").description("a new subscription; its signing secret is printed once").argument("<name>")).option(
      "--paused",
      "created paused",
    ),
  ).action((name: string, options, command: Command) => runApi(command, async (api) => (await load()).createSubscription(api, name, options)));
  apiOptions(
    policy(subscriptions.command("update").description("change a subscription's policy, pause or resume it").argument("<name>"))
      .addOption(new Option("--pause", "pause its deliveries").conflicts("resume"))
      .option("--resume", "resume its deliveries")
      .option("--rotate-secret", "a new signing secret, printed once"),
  ).action((name: string, options, command: Command) => runApi(command, async (api) => (await load()).updateSubscription(api, name, options)));
  apiOptions(subscriptions.command("delete").description("delete a subscription and its deliveries").argument("<name>")).action(
    (name: string, _options, command: Command) => runApi(command, async (api) => (await load()).deleteSubscription(api, name)),
  );
  apiOptions(program.command("subscription").description("one subscription's policies, endpoint health and circuit history").argument("<subscription>")).action(
    (name: string, _options, command: Command) => runApi(command, async (api) => (await load()).showOne(api, name)),
  );
}

function addOperatorCommands(program: Command): void {
  const operators = program.command("operators").description("operators with roles viewer, operator, admin (list, add, role, rotate-key, remove)");
  const act = (action: string, args: string[], options: { role?: string }, command: Command) =>
    runApi(command, async (api) => (await import("./operators.ts")).operators(api, action, args, options.role));
  apiOptions(operators.command("list", { isDefault: true }).description("the operators and their roles")).action((options, command: Command) =>
    act("list", [], options, command),
  );
  apiOptions(
    operators
      .command("add")
      .description("a new operator; their key is printed once")
      .argument("<name>")
      .requiredOption("--role <role>", "viewer, operator or admin"),
  ).action((name: string, options, command: Command) => act("add", [name], options, command));
  apiOptions(operators.command("role").description("change an operator's role (console sessions included)").argument("<name>").argument("<role>")).action(
    (name: string, role: string, options, command: Command) => act("role", [name, role], options, command),
  );
  apiOptions(
    operators.command("rotate-key").description("a new key for the operator, printed once; the old one and their sessions end").argument("<name>"),
  ).action((name: string, options, command: Command) => act("rotate-key", [name], options, command));
  apiOptions(operators.command("remove").description("the operator's key stops working and their sessions end").argument("<name>")).action(
    (name: string, options, command: Command) => act("remove", [name], options, command),
  );
}
