// Private broker instances for tests and benchmarks that must stop and restart a broker they own:
// RabbitMQ, NATS (JetStream) and Redis from Debian's packages, on 127.0.0.1, on non-default ports,
// with their data in a temporary folder that survives a restart (so a restart keeps what the broker
// confirmed) and is removed by destroy(). The recipes mirror scripts/with-services.sh (see there and
// shared/reference/services for the pitfalls): RabbitMQ runs the real scripts in /usr/lib/rabbitmq/bin
// with every path, the Erlang cookie's HOME, a private epmd on AMQP+2 and the inter-node port AMQP+1
// set explicitly. Readiness is checked with the real client libraries.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type BrokerKind = "rabbitmq" | "nats" | "redis";

export interface PrivateBroker {
  readonly kind: BrokerKind;
  readonly port: number;
  /** The URL clients use (RabbitMQ: guest/guest, which RabbitMQ allows from loopback). */
  readonly url: string;
  readonly dir: string;
  /** The server's process id while it runs (RabbitMQ: the Erlang VM), for CPU and memory readings. */
  readonly pid: number | null;
  /** Starts the server on the existing data folder and waits until it answers; returns ms taken. */
  start(): Promise<number>;
  /** SIGKILL: a crash (what the broker confirmed must survive it); SIGTERM: a clean shutdown. */
  stop(signal?: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Stops the server and removes its data folder. */
  destroy(): Promise<void>;
}

/**
 * Fixed ports when set; otherwise a free one is picked at the first start in 24000-25999, away
 * from the shared instances (5672, 4222, 6379) and scripts/with-services.sh's (45672, 44222,
 * 46379), so that two test runs on one machine do not collide. A restart keeps the port. The
 * range is below Linux's ephemeral ports (32768-60999): an outgoing connection made while the
 * broker is down for its restart can never be given its port (seen: RabbitMQ failing to restart
 * with eaddrinuse on 47130).
 */
const FIXED_PORTS: Record<BrokerKind, number | undefined> = {
  rabbitmq: Number(process.env.TIDINGS_BROKERS_AMQP_PORT) || undefined,
  nats: Number(process.env.TIDINGS_BROKERS_NATS_PORT) || undefined,
  redis: Number(process.env.TIDINGS_BROKERS_REDIS_PORT) || undefined,
};

const live = new Set<number>();
process.on("exit", () => {
  for (const pid of live) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/** Alive and not a zombie (orphans re-parented to PID 1 linger as zombies for a while). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The port can be bound now (a connect test misses ports held by outgoing connections). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  live.delete(pid);
  return true;
}

/** Starts a server with its output appended to `log` (kept for the error of a failed start). */
function launch(command: string, args: string[], env: NodeJS.ProcessEnv, log: string): ChildProcess {
  writeFileSync(log, `$ ${command} ${args.join(" ")}\n`, { flag: "a" });
  const fd = openSync(log, "a");
  const child = spawn(command, args, { env, stdio: ["ignore", fd, fd], detached: false });
  closeSync(fd);
  child.on("error", () => undefined);
  if (child.pid) live.add(child.pid);
  return child;
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** Takes the reservation file for this process, or one left by a process that is gone; false if a live one holds it. */
function reserve(file: string): boolean {
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx" });
      return true;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(file, "utf8").trim());
      } catch {
        continue; // gone meanwhile: try to take it again
      }
      if (holder && alive(holder)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

async function waitReady(what: string, ready: () => Promise<boolean>, running: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (!running()) throw new Error(`${what} exited during start-up`);
    if (Date.now() > deadline) throw new Error(`${what} did not answer within ${ms} ms`);
    await sleep(100);
  }
}

abstract class Base implements PrivateBroker {
  abstract readonly kind: BrokerKind;
  abstract readonly url: string;
  readonly dir: string;
  protected server: ChildProcess | null = null;

  get pid(): number | null {
    return this.server?.pid ?? null;
  }

  constructor(public port: number) {
    this.dir = mkdtempSync(join(tmpdir(), "tidings-broker-"));
  }

  /** The ports the instance needs, from the first. */
  protected abstract span(): number;
  private started = false;

  private reservation: string | null = null;

  /**
   * A free block of ports, reserved for this instance until destroy() by a file naming our
   * process (tidings-broker-ports/<base> in the temp folder): a broker that is down for a
   * restart keeps its ports, so that another test or benchmark running at the same time does
   * not pick them meanwhile (seen: a RabbitMQ restart failing on a port taken while it was down).
   */
  private async pickPort(): Promise<void> {
    this.release();
    const dir = join(tmpdir(), "tidings-broker-ports");
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 50; i++) {
      const base = 24000 + 10 * Math.floor(Math.random() * 200);
      const file = join(dir, String(base));
      if (!reserve(file)) continue;
      const ports = Array.from({ length: this.span() }, (_, k) => base + k);
      if ((await Promise.all(ports.map(portFree))).every(Boolean)) {
        this.port = base;
        this.reservation = file;
        return;
      }
      rmSync(file, { force: true });
    }
    throw new Error(`${this.kind}: no free ports found in 24000-25999`);
  }

  protected release(): void {
    if (this.reservation) rmSync(this.reservation, { force: true });
    this.reservation = null;
  }

  protected abstract launch(): Promise<void>;
  protected abstract ready(): Promise<boolean>;
  protected abstract ports(): number[];

  async start(): Promise<number> {
    const t0 = Date.now();
    // A first start on a port picked here is tried again on other ports: a port found free can
    // be taken by someone else before the server binds it.
    const picking = !this.started && this.port === 0;
    this.started = true;
    for (let attempt = 1; ; attempt++) {
      if (picking) await this.pickPort();
      try {
        await this.startOnce();
        return Date.now() - t0;
      } catch (error) {
        await this.stop("SIGKILL");
        if (!picking || attempt === 3) throw error;
      }
    }
  }

  private async startOnce(): Promise<void> {
    for (const port of this.ports()) if (!(await portFree(port))) throw new Error(`${this.kind}: port ${port} is busy`);
    await this.launch();
    const server = this.server!;
    try {
      await waitReady(
        this.kind,
        () => this.ready(),
        () => alive(server.pid!),
        120_000,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message} (port ${this.port}); its output:\n${tail(join(this.dir, "commands.log"))}`);
    }
  }

  protected async kill(pid: number | undefined, signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    if (!pid || !alive(pid)) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (!(await waitGone(pid, 30_000))) {
      process.kill(pid, "SIGKILL");
      await waitGone(pid, 5000);
    }
  }

  async stop(signal: "SIGKILL" | "SIGTERM" = "SIGTERM"): Promise<void> {
    await this.kill(this.server?.pid, signal);
    this.server = null;
  }

  async destroy(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
    this.release();
  }
}

class Redis extends Base {
  readonly kind = "redis";
  protected span() {
    return 1;
  }
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  protected ports() {
    return [this.port];
  }
  protected async launch() {
    // appendfsync always: an XADD reply means the entry is on disk, so a SIGKILL loses nothing confirmed
    this.server = launch(
      "/usr/bin/redis-server",
      [
        "--bind",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--dir",
        this.dir,
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--protected-mode",
        "yes",
        "--logfile",
        join(this.dir, "redis.log"),
      ],
      process.env,
      join(this.dir, "commands.log"),
    );
  }
  protected async ready() {
    const { Redis: Client } = await import("ioredis");
    const client = new Client(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on("error", () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === "PONG";
    } finally {
      client.disconnect();
    }
  }
}

class Nats extends Base {
  readonly kind = "nats";
  protected span() {
    return 1;
  }
  get url() {
    return `nats://127.0.0.1:${this.port}`;
  }
  protected ports() {
    return [this.port];
  }
  protected async launch() {
    mkdirSync(join(this.dir, "js"), { recursive: true });
    this.server = launch(
      "/usr/sbin/nats-server",
      ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", join(this.dir, "js"), "-n", "tidings-test-nats", "-l", join(this.dir, "nats.log")],
      process.env,
      join(this.dir, "commands.log"),
    );
  }
  protected async ready() {
    const { connect } = await import("@nats-io/transport-node");
    const { jetstreamManager } = await import("@nats-io/jetstream");
    const nc = await connect({ servers: `127.0.0.1:${this.port}`, reconnect: false, timeout: 1000 });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
      return true;
    } finally {
      await nc.close();
    }
  }
}

class Rabbitmq extends Base {
  readonly kind = "rabbitmq";
  protected span() {
    return 3; // AMQP, Erlang distribution (+1), its own epmd (+2)
  }
  private epmd: ChildProcess | null = null;
  get url() {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }
  private epmdPort = 0;
  protected ports() {
    return this.epmd && this.epmdPort === this.port + 2 ? [this.port, this.port + 1] : [this.port, this.port + 1, this.port + 2];
  }
  private env(): NodeJS.ProcessEnv {
    const d = this.dir;
    return {
      ...process.env,
      HOME: join(d, "home"),
      RABBITMQ_NODENAME: "rabbit@localhost",
      RABBITMQ_CONF_ENV_FILE: join(d, "rabbitmq-env.conf"),
      RABBITMQ_CONFIG_FILE: join(d, "rabbitmq.conf"),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(d, "advanced.config"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(d, "enabled_plugins"),
      RABBITMQ_MNESIA_BASE: join(d, "mnesia"),
      RABBITMQ_LOG_BASE: join(d, "log"),
      RABBITMQ_PID_FILE: join(d, "beam.pid"),
      RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.port + 1),
      ERL_EPMD_ADDRESS: "127.0.0.1",
      ERL_EPMD_PORT: String(this.port + 2),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
    };
  }
  protected async launch() {
    const d = this.dir;
    for (const sub of ["home", "mnesia", "log"]) mkdirSync(join(d, sub), { recursive: true });
    writeFileSync(join(d, "rabbitmq-env.conf"), "");
    writeFileSync(
      join(d, "rabbitmq.conf"),
      `listeners.tcp.1 = 127.0.0.1:${this.port}\nlog.console = false\nlog.file.level = warning\ndisk_free_limit.absolute = 10MB\n`,
    );
    writeFileSync(join(d, "enabled_plugins"), "[].\n");
    if (!this.epmd || !alive(this.epmd.pid!) || this.epmdPort !== this.port + 2) {
      await this.kill(this.epmd?.pid, "SIGKILL");
      this.epmdPort = this.port + 2;
      this.epmd = launch("/usr/bin/epmd", ["-address", "127.0.0.1", "-port", String(this.epmdPort)], this.env(), join(d, "commands.log"));
      // The VM must find our epmd listening: otherwise it starts one of its own on the same port,
      // and under load the two race and the node fails to register.
      const epmd = this.epmd;
      await waitReady(
        "epmd",
        () => listening(this.epmdPort),
        () => alive(epmd.pid!),
        10_000,
      );
    }
    rmSync(join(d, "beam.pid"), { force: true });
    this.server = launch("/usr/lib/rabbitmq/bin/rabbitmq-server", [], this.env(), join(d, "commands.log"));
  }
  protected async ready() {
    const { connect } = await import("amqplib");
    const model = await connect(this.url, { timeout: 2000 });
    model.on("error", () => undefined);
    await model.close();
    return true;
  }
  override get pid(): number | null {
    return this.server ? (this.beamPid() ?? null) : null;
  }
  override async start() {
    const ms = await super.start();
    const beam = this.beamPid();
    if (beam) live.add(beam);
    return ms;
  }
  private beamPid(): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, "beam.pid"), "utf8").trim()) || undefined;
    } catch {
      return undefined;
    }
  }
  override async stop(signal: "SIGKILL" | "SIGTERM" = "SIGTERM") {
    // SIGKILL goes to the Erlang VM itself (the sh script then exits); SIGTERM to the script, which stops the VM cleanly
    const beam = this.beamPid();
    if (signal === "SIGKILL") await this.kill(beam, "SIGKILL");
    await super.stop(signal === "SIGKILL" ? "SIGKILL" : "SIGTERM");
    if (beam) await this.kill(beam, "SIGKILL");
  }
  override async destroy() {
    await this.stop("SIGKILL");
    await this.kill(this.epmd?.pid, "SIGKILL");
    this.epmd = null;
    rmSync(this.dir, { recursive: true, force: true });
    this.release();
  }
}

/** A private broker of `kind` (not started yet; port 0: a free one at the first start). */
export function privateBroker(kind: BrokerKind, port = FIXED_PORTS[kind] ?? 0): PrivateBroker {
  if (kind === "redis") return new Redis(port);
  if (kind === "nats") return new Nats(port);
  return new Rabbitmq(port);
}
