'use strict';
// Send the events described by a JSON document on stdin with the Node.js fluent-logger (npm),
// for tests/sources/test_fluent_forward.py. Prints {"sent": n} and exits 0 once every event's
// callback reported success (after the server's ack when "ack" is true); exits 2 on any error.
const fs = require('fs');
const logger = require('fluent-logger');

const quiet = { info() {}, error() {} };

function fail(error) {
  process.stderr.write(`fluent-logger error: ${error && error.name}: ${error && error.message}\n`);
  process.exit(2);
}

function run(config) {
  const options = {
    host: '127.0.0.1',
    port: config.port,
    eventMode: config.mode,
    requireAckResponse: config.ack,
    ackResponseTimeout: 120000,
    enableReconnect: false,
    internalLogger: quiet,
  };
  if (config.sharedKey !== undefined) {
    options.security = { clientHostname: 'node-client', sharedKey: config.sharedKey };
  }
  if (config.ca) {
    options.tls = true;
    options.tlsOptions = { ca: fs.readFileSync(config.ca), servername: 'localhost' };
  }
  const sender = logger.createFluentSender(null, options);
  sender.on('error', fail);
  let left = config.events.length;
  for (const event of config.events) {
    const time = event.nanos === undefined
      ? event.seconds
      : new logger.EventTime(event.seconds, event.nanos);
    sender.emit(event.tag, event.record, time, (error) => {
      if (error) fail(error);
      left -= 1;
      if (left === 0) {
        sender.end(null, null, () => {
          process.stdout.write(JSON.stringify({ sent: config.events.length }) + '\n');
          process.exit(0);
        });
      }
    });
  }
}

const parts = [];
process.stdin.on('data', (part) => parts.push(part));
process.stdin.on('end', () => run(JSON.parse(Buffer.concat(parts).toString())));
