// A small Bridge client for Node.js: a session, named queues and locks, loaded from the
// repository's protos/ at run time (no generated code). Payloads are MessagePack, so
// what a Python script puts (ints, floats, strings, bytes, lists, dicts) arrives as the
// same values here, and back.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { getuid } from "node:process";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { decode, encode } from "@msgpack/msgpack";

const PROTOS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos");

/** What Python's gilbridge connects to: GILBRIDGE_ADDRESS, else the default socket. */
export function defaultAddress(env = process.env) {
  if (env.GILBRIDGE_ADDRESS) return env.GILBRIDGE_ADDRESS;
  const runtime = env.GILBRIDGE_RUNTIME_DIR
    ?? (env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, "gilbridge") : `/tmp/gilbridge-${getuid()}`);
  return `unix:${join(runtime, "host.sock")}`;
}

/** A failed wait: the stdlib's queue.Empty / queue.Full. */
export class Timeout extends Error {}

function load() {
  const definition = protoLoader.loadSync(
    ["bridge/v1/sessions.proto", "bridge/v1/queues.proto", "bridge/v1/synchronization.proto"],
    { includeDirs: [PROTOS], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  return grpc.loadPackageDefinition(definition).bridge.v1;
}

function call(client, method, request, metadata, deadlineSeconds) {
  const options = deadlineSeconds === undefined ? {} : { deadline: Date.now() + deadlineSeconds * 1000 };
  return new Promise((resolve, reject) =>
    client[method](request, metadata, options, (error, reply) => (error ? reject(error) : resolve(reply))));
}

function wait(timeoutSeconds) {
  if (timeoutSeconds === undefined || timeoutSeconds === null) return { block: true };
  if (!(timeoutSeconds >= 0)) throw new RangeError("timeout must be a non-negative number of seconds");
  return { block: true, timeout_seconds: timeoutSeconds };
}

/** One session with the host: Hello, a KeepAlive every third of the lease, Goodbye on close(). */
export class Session {
  static async open({ address = defaultAddress(), name = `node ${process.argv.slice(1).join(" ")}` } = {}) {
    const v1 = load();
    const target = address.startsWith("unix:") ? address : address.replace(/^tcp:/, "");
    const tls = process.env.GILBRIDGE_TLS_CA;
    const credentials = tls
      ? grpc.credentials.createSsl((await import("node:fs")).readFileSync(tls))
      : grpc.credentials.createInsecure();
    const metadata = new grpc.Metadata();
    if (process.env.GILBRIDGE_TOKEN) metadata.set("authorization", `Bearer ${process.env.GILBRIDGE_TOKEN}`);
    const clients = {
      sessions: new v1.Sessions(target, credentials),
      queues: new v1.Queues(target, credentials),
      sync: new v1.Synchronization(target, credentials),
    };
    const hello = await call(clients.sessions, "Hello", { client_name: name, pid: process.pid, language: "node" }, metadata, 30);
    return new Session(clients, metadata, hello);
  }

  constructor(clients, metadata, hello) {
    this.clients = clients;
    this.metadata = metadata;
    this.id = hello.session_id;
    this.host = hello.host;
    const every = Math.max(0.5, (hello.lease_seconds || 5) / 3) * 1000;
    this.keepAlive = setInterval(() => {
      call(this.clients.sessions, "KeepAlive", { session_id: this.id }, this.metadata, 5).catch(() => {});
    }, every);
    this.keepAlive.unref();
  }

  call(service, method, request, deadlineSeconds) {
    return call(this.clients[service], method, request, this.metadata, deadlineSeconds);
  }

  /** A named Queue (created, or attached when it exists): put/get of MessagePack values. */
  async queue(name, { maxsize = 0 } = {}) {
    await this.call("queues", "CreateQueue", { session_id: this.id, name, mode: "CREATE_OR_ATTACH", kind: "QUEUE", maxsize });
    return new Queue(this, name);
  }

  /** A named Lock (created, or attached when it exists). */
  async lock(name) {
    await this.call("sync", "CreateLock", { session_id: this.id, name, mode: "CREATE_OR_ATTACH", kind: "LOCK" });
    return new Lock(this, name);
  }

  /** Goodbye: the host releases what the session still held. */
  async close() {
    clearInterval(this.keepAlive);
    try {
      await this.call("sessions", "Goodbye", { session_id: this.id }, 5);
    } finally {
      for (const client of Object.values(this.clients)) client.close();
    }
  }
}

export class Queue {
  constructor(session, name) {
    this.session = session;
    this.target = { session_id: session.id, name };
  }

  /** Puts one value; waits for room at most timeoutSeconds (a bounded queue), else throws Timeout. */
  async put(value, timeoutSeconds) {
    const reply = await this.session.call("queues", "Put", { target: this.target, items: [encode(value)], wait: wait(timeoutSeconds) });
    if (reply.accepted < 1) throw new Timeout(`queue ${this.target.name} is full`);
  }

  /** The next value; waits at most timeoutSeconds (forever when undefined), else throws Timeout. */
  async get(timeoutSeconds) {
    const reply = await this.session.call("queues", "Get", { target: this.target, max_items: 1, wait: wait(timeoutSeconds) });
    if (reply.items.length === 0) throw new Timeout(`queue ${this.target.name} is empty`);
    const value = decode(reply.items[0]);
    // Received and decoded: acknowledge it, so the host forgets it for good.
    await this.session.call("queues", "Ack", { target: this.target, count: 1 });
    return value;
  }
}

export class Lock {
  constructor(session, name) {
    this.session = session;
    this.target = { session_id: session.id, name };
    this.owner = `node-${process.pid}`;
  }

  /** true once held; false when timeoutSeconds passed first (0: do not wait). */
  async acquire(timeoutSeconds) {
    const request = timeoutSeconds === 0
      ? { target: this.target, owner: this.owner, wait: { block: false } }
      : { target: this.target, owner: this.owner, wait: wait(timeoutSeconds) };
    return (await this.session.call("sync", "Acquire", request)).acquired;
  }

  async release() {
    await this.session.call("sync", "Release", { target: this.target, owner: this.owner });
  }
}
