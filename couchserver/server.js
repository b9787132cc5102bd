#!/usr/bin/env node
// In-memory CouchDB-compatible HTTP server for tests and the demo.
//
//   node couchserver/server.js [--host 127.0.0.1] [--port 5984] [--verbose]
//
// --port 0 picks a free port. Once listening it prints exactly one line to stdout:
//
//   couchserver: serving http://127.0.0.1:PORT
//
// Optional server admin (turns on CouchDB authentication, sessions and _security):
// set COUCHSERVER_ADMIN=user:password in the environment (or pass --admin user:password,
// which is visible in `ps`). Without it the server is an "admin party": no auth at all.
//
// --watch-parent exits once the process that started it is gone (used by the test fixtures).
//
// Signals: SIGTERM / SIGINT stop the server and exit 0. SIGUSR1 stops listening and drops
// every open connection while keeping the data in memory ("CouchDB is down"); SIGUSR2 starts
// listening again on the same port ("CouchDB is back"). Each transition prints one line
// (`couchserver: paused` / `couchserver: serving URL`).
"use strict";

const http = require("http");
const express = require("express");
const expressPouchDB = require("express-pouchdb");
const PouchDB = require("pouchdb-core")
  .plugin(require("pouchdb-adapter-memory"))
  .plugin(require("pouchdb-adapter-http"))
  .plugin(require("pouchdb-mapreduce"))
  .plugin(require("pouchdb-replication"));

function parseArgs(argv) {
  const opts = {
    host: "127.0.0.1",
    port: 5984,
    verbose: false,
    watchParent: false,
    admin: process.env.COUCHSERVER_ADMIN || "",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) fail(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case "--host":
        opts.host = value();
        break;
      case "--port": {
        const raw = value();
        const port = Number(raw);
        if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${raw}`);
        opts.port = port;
        break;
      }
      case "--admin":
        opts.admin = value();
        break;
      case "--verbose":
        opts.verbose = true;
        break;
      case "--watch-parent":
        opts.watchParent = true;
        break;
      case "-h":
      case "--help":
        process.stdout.write(
          "usage: node server.js [--host HOST] [--port N (0 = free port)] [--verbose]\n" +
            "       [--watch-parent]          (exit when the parent process goes away)\n" +
            "       [--admin USER:PASSWORD]   (or COUCHSERVER_ADMIN=USER:PASSWORD)\n"
        );
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${arg}`);
    }
  }
  if (opts.admin && !/^[^:]+:.+$/.test(opts.admin)) fail("admin must look like user:password");
  return opts;
}

function fail(message) {
  process.stderr.write(`couchserver: ${message}\n`);
  process.exit(2);
}

function buildApp(opts) {
  const MemPouchDB = PouchDB.defaults({ adapter: "memory" });
  const common = {
    inMemoryConfig: true, // never write config.json
    logPath: "/dev/null", // never write log.txt (only used when logging is on)
  };
  let pouchApp;
  let ready = Promise.resolve();
  if (opts.admin) {
    // Full CouchDB emulation: authentication, _session, _security, validation.
    pouchApp = expressPouchDB(MemPouchDB, {
      ...common,
      mode: "fullCouchDB",
      overrideMode: { exclude: ["routes/fauxton", "routes/http-log", "replicator"] },
    });
    const sep = opts.admin.indexOf(":");
    const user = opts.admin.slice(0, sep);
    const password = opts.admin.slice(sep + 1);
    pouchApp.couchConfig.set("log", "level", "none", () => {});
    // Hashing the password is asynchronous: only listen once the admin exists.
    ready = new Promise((resolve, reject) => {
      pouchApp.couchConfig.set("admins", user, password, (err) => (err ? reject(err) : resolve()));
    });
  } else {
    // Admin party, only what a CouchDB client needs: quiet and fast.
    pouchApp = expressPouchDB(MemPouchDB, { ...common, mode: "minimumForPouchDB" });
  }

  const app = express();
  app.disable("x-powered-by");
  if (opts.verbose) {
    app.use((req, res, next) => {
      const started = process.hrtime.bigint();
      res.on("finish", () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        process.stderr.write(
          `couchserver: ${req.method} ${req.originalUrl} ${res.statusCode} ${ms.toFixed(1)}ms\n`
        );
      });
      next();
    });
  }
  app.use(pouchApp);
  return { app, ready };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { app, ready } = buildApp(opts);
  const server = http.createServer(app);
  server.keepAliveTimeout = 30000;
  let port = opts.port;
  let listening = false;
  let stopping = false;

  server.on("error", (err) => {
    process.stderr.write(`couchserver: ${err.message}\n`);
    process.exit(1);
  });

  function listen() {
    server.listen(port, opts.host, () => {
      listening = true;
      port = server.address().port; // keep the same port across pause / resume
      const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
      process.stdout.write(`couchserver: serving http://${host}:${port}\n`);
    });
  }

  // While paused nothing else keeps the event loop alive: hold it open until resume / stop.
  let keepAlive = null;

  function pause() {
    if (!listening || stopping) return;
    listening = false;
    keepAlive = setInterval(() => {}, 1 << 30);
    server.close(() => process.stdout.write("couchserver: paused\n"));
    server.closeAllConnections();
  }

  function resume() {
    if (listening || stopping || server.listening) return;
    clearInterval(keepAlive);
    keepAlive = null;
    listen();
  }

  function stop() {
    if (stopping) return;
    stopping = true;
    const done = () => process.exit(0);
    if (server.listening) {
      server.close(done);
      server.closeAllConnections();
      setTimeout(done, 2000).unref();
    } else {
      done();
    }
  }

  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGUSR1", pause);
  process.on("SIGUSR2", resume);
  if (opts.watchParent) {
    // Test runners that die without cleaning up must not leave servers behind.
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) stop();
    }, 500).unref();
  }
  ready.then(listen, (err) => fail(`cannot configure the server admin: ${err.message}`));
}

main();
