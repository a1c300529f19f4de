/**
 * A receiver that misbehaves, run as its own process. It listens on 127.0.0.1 on a free port,
 * prints `listening <port>`, then one line `request <path> <webhook-id>` per request it gets.
 * Paths:
 *   /nul/…   500 with a NUL byte and an invalid UTF-8 sequence in the body
 *   /drip/…  200 with its headers at once, then one byte of body a second, forever
 *   /huge/…  200 with a 200 MB body, as fast as the socket takes it
 *   other    200 "ok"
 */
import { createServer } from "node:http";

const CHUNK = Buffer.alloc(1 << 20, 0x61);

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    process.stdout.write(`request ${req.url} ${String(req.headers["webhook-id"])}\n`);
    const path = req.url ?? "/";
    if (path.startsWith("/nul")) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(Buffer.concat([Buffer.from("bad\u0000body "), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(" end")]));
    } else if (path.startsWith("/drip")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("{");
      const timer = setInterval(() => res.write(" "), 1000);
      res.on("close", () => clearInterval(timer));
    } else if (path.startsWith("/huge")) {
      res.writeHead(200, { "content-type": "application/json" });
      let left = 200;
      const more = () => {
        while (left > 0) {
          left--;
          if (!res.write(CHUNK)) return void res.once("drain", more);
        }
        res.end();
      };
      res.on("close", () => (left = 0));
      more();
    } else {
      res.writeHead(200).end("ok");
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === "object" && address ? address.port : 0}\n`);
});
