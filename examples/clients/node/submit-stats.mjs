#!/usr/bin/env node
// Submit a Boson `stats` task over RabbitMQ and print its result, in Node.js.
//
// Written from docs/ alone: docs/wire-format.md (the envelope) and
// docs/asyncapi.yaml (exchanges, routing keys, queues, message schemas, the
// rules for results). See README.md for the facts that came from elsewhere.
//
//   BOSON_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/ BOSON_KEYS=k1:... \
//     node submit-stats.mjs --input ../../measurements.csv [--timeout 60]
//
// Prints the result as one JSON line on stdout. Exit status: 0 succeeded,
// 1 the task failed, 2 anything else (one line on stderr).

import crypto from "node:crypto";
import fs from "node:fs";
import { parseArgs } from "node:util";
import amqp from "amqplib";
import { DecodeError, Envelopes, parseKeys } from "./envelope.mjs";

const CLIENT_QUEUE_ARGUMENTS = (ns) => ({
  // asyncapi.yaml, "Results": the Boson client's queue arguments, exactly.
  "x-queue-type": "classic",
  "x-expires": 86400000,
  "x-dead-letter-exchange": `${ns}.dead`,
});
const SUBMIT_RETRY_MS = 500;

function fail(text) {
  process.stderr.write(`boson-node: ${text}\n`);
  process.exit(2);
}

function options() {
  const { values } = parseArgs({
    options: {
      input: { type: "string" },
      timeout: { type: "string", default: "60" },
      "client-id": { type: "string" },
      handler: { type: "string", default: "stats" },
    },
  });
  if (!values.input) fail("--input FILE is required (a CSV file for `stats`)");
  const timeout = Number(values.timeout);
  if (!(timeout > 0)) fail("--timeout must be a positive number of seconds");
  const env = process.env;
  if (!env.BOSON_KEYS) fail("set BOSON_KEYS (id:base64key, the services' keyring)");
  const namespace = env.BOSON_NAMESPACE ?? "boson";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(namespace)) fail("BOSON_NAMESPACE is not a valid namespace");
  const clientId = values["client-id"] ?? `node-${crypto.randomBytes(6).toString("hex")}`;
  if (!/^[A-Za-z0-9._:@-]{1,128}$/.test(clientId)) fail("--client-id is not a valid id");
  return {
    url: env.BOSON_BROKER_URL ?? "amqp://guest:guest@127.0.0.1:5672/",
    keys: env.BOSON_KEYS,
    activeKeyId: env.BOSON_ACTIVE_KEY_ID,
    cipher: env.BOSON_CIPHER ?? "aes-256-gcm",
    namespace,
    clientId,
    input: values.input,
    handler: values.handler,
    timeoutMs: timeout * 1000,
  };
}

function jsonable(_key, value) {
  // bytes (msgpack bin) print as base64
  return value instanceof Uint8Array ? Buffer.from(value).toString("base64") : value;
}

async function main() {
  const opts = options();
  let envelopes;
  try {
    envelopes = new Envelopes(parseKeys(opts.keys), { activeKeyId: opts.activeKeyId, cipher: opts.cipher });
  } catch (error) {
    fail(error.message);
  }
  let data;
  try {
    data = fs.readFileSync(opts.input);
  } catch (error) {
    fail(`cannot read ${opts.input}: ${error.code ?? error.message}`);
  }
  const deadline = Date.now() + opts.timeoutMs;
  const ns = opts.namespace;
  const work = `${ns}.work`;
  const events = `${ns}.events`;

  let connection;
  try {
    connection = await amqp.connect(opts.url, { timeout: 10000 });
  } catch (error) {
    fail(`cannot connect to the broker: ${error.code ?? error.message}`);
  }
  connection.on("error", () => {}); // reported through the failing call instead
  const timer = setTimeout(() => fail(`no result within ${opts.timeoutMs / 1000}s`), opts.timeoutMs);
  try {
    const channel = await connection.createConfirmChannel();

    // (1) The exchanges, as asyncapi.yaml declares them (idempotent).
    await channel.assertExchange(work, "topic", { durable: true, autoDelete: false });
    await channel.assertExchange(events, "topic", { durable: true, autoDelete: false });
    await channel.assertExchange(`${ns}.dead`, "fanout", { durable: true, autoDelete: false });

    // (2) Our reply queue, bound to result.<client id>, before submitting.
    const queue = `${ns}.client.${opts.clientId}`;
    await channel.assertQueue(queue, { durable: true, arguments: CLIENT_QUEUE_ARGUMENTS(ns) });
    await channel.bindQueue(queue, events, `result.${opts.clientId}`);

    const taskId = crypto.randomBytes(16).toString("hex");
    const result = new Promise((resolve, reject) => {
      channel
        .consume(queue, (delivery) => {
          if (delivery === null) return reject(new Error("the broker cancelled our consumer"));
          let kind, items;
          try {
            [kind, items] = envelopes.read(delivery.content);
          } catch (error) {
            channel.nack(delivery, false, false); // dead-letter what we cannot read
            if (error instanceof DecodeError) {
              process.stderr.write(`boson-node: dropped a delivery: ${error.message}\n`);
              return;
            }
            return reject(error);
          }
          channel.ack(delivery);
          const mine = kind === "task.result" ? items.find((item) => item.task_id === taskId) : undefined;
          if (mine !== undefined) resolve(mine);
        })
        .catch(reject);
    });

    // (3) task.submitted to <ns>.work / task.submit: persistent, mandatory, confirmed.
    const item = {
      message_id: crypto.randomBytes(16).toString("hex"),
      task_id: taskId,
      handler: opts.handler,
      data: new Uint8Array(data),
      data_size: data.length / 1024, // KiB
      complexity: 1.5,
      reply_to: opts.clientId,
      submitted_at: Date.now() / 1000,
    };
    const body = envelopes.write("task.submitted", [item]);
    let returned = false;
    channel.on("return", (message) => {
      if (message.properties.messageId === item.message_id) returned = true;
    });
    for (;;) {
      returned = false;
      channel.publish(work, "task.submit", body, {
        persistent: true,
        mandatory: true,
        messageId: item.message_id,
        headers: { "x-boson-kind": "task.submitted" },
      });
      await channel.waitForConfirms(); // a return comes before its confirm
      if (!returned) break;
      // NO_ROUTE: no scheduler has declared the submit queue yet. Not sent: try again.
      if (Date.now() + SUBMIT_RETRY_MS > deadline) {
        await channel.deleteQueue(queue).catch(() => {});
        fail("the submit queue never appeared (unroutable)");
      }
      await new Promise((r) => setTimeout(r, SUBMIT_RETRY_MS));
    }

    const outcome = await result;
    clearTimeout(timer);
    await channel.deleteQueue(queue);
    await connection.close();
    process.stdout.write(
      `${JSON.stringify(
        {
          task_id: outcome.task_id,
          status: outcome.status,
          node_id: outcome.node_id,
          output: outcome.output,
          error: outcome.error,
        },
        jsonable,
      )}\n`,
    );
    process.exit(outcome.status === "succeeded" ? 0 : 1);
  } catch (error) {
    fail(error.message.split("\n")[0]);
  }
}

main();
