// Drives examples/clients/node/envelope.mjs for tests/unit/test_node_envelope.py.
// stdin: one JSON request per line, {"keys": "...", "read": "<base64>"} or
// {"keys": "...", "write": {"kind": "...", "items": [...], "bytes": ["field", ...]}};
// stdout: one JSON answer per line ({"kind", "items"} / {"envelope"} / {"error"}).
import readline from "node:readline";
import { DecodeError, Envelopes, parseKeys } from "../../examples/clients/node/envelope.mjs";

// Bytes print as {"bin": base64}; a Buffer has already become {type: "Buffer", data} via toJSON.
const plain = (_key, value) => {
  if (value instanceof Uint8Array) return { bin: Buffer.from(value).toString("base64") };
  if (value && value.type === "Buffer" && Array.isArray(value.data)) {
    return { bin: Buffer.from(value.data).toString("base64") };
  }
  return value;
};

for await (const line of readline.createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  let answer;
  try {
    const envelopes = new Envelopes(parseKeys(request.keys), { cipher: request.cipher ?? "aes-256-gcm" });
    if (request.read !== undefined) {
      const [kind, items] = envelopes.read(Buffer.from(request.read, "base64"));
      answer = { kind, items };
    } else {
      const { kind, items, bytes = [] } = request.write;
      for (const item of items) for (const field of bytes) item[field] = Buffer.from(item[field], "base64");
      answer = { envelope: envelopes.write(kind, items).toString("base64") };
    }
  } catch (error) {
    answer = { error: error instanceof DecodeError ? error.reason : `other: ${error.message}` };
  }
  process.stdout.write(`${JSON.stringify(answer, plain)}\n`);
}
