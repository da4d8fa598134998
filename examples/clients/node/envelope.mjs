// The Boson envelope (docs/wire-format.md), written from that page alone.
//
//   "BSN" | version 1 | flags | id len | key id | kind len | kind | nonce (12)   <- header = AAD
//   ciphertext || tag (16)
//
// This writer never compresses (the spec lets a writer leave any payload
// uncompressed); the reader takes compressed payloads (one zstd frame that
// declares its size, nothing after it).

import crypto from "node:crypto";
import { decode, encode } from "@msgpack/msgpack";
import { decompress } from "fzstd";

export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024; // §6: the default max_message_bytes
const MAGIC = Buffer.from("BSN", "ascii");
const VERSION = 1;
const FLAG_COMPRESSED = 0x01;
const FLAG_BATCH = 0x02;
const RESERVED_FLAGS = 0xf0;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const CIPHERS = { "aes-256-gcm": 0, "chacha20-poly1305": 1 }; // §2, §7 (BOSON_CIPHER)
const NODE_CIPHER = ["aes-256-gcm", "chacha20-poly1305"];
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const KIND = /^[A-Za-z0-9._-]{1,255}$/;
// §5: the schema version each kind is written with, and what a reader accepts.
const WRITE_VERSION = { "task.submitted": 4, "data.chunk": 2, "data.check": 2 };
const READ_VERSIONS = {
  "task.result": [1, 2, 3],
  "data.chunk": [1, 2],
  "data.check": [1, 2],
};

/** A decode failure, with the reason token of §6. */
export class DecodeError extends Error {
  constructor(reason, message) {
    super(`${reason}: ${message}`);
    this.reason = reason;
  }
}

/** §7: "id:base64key[,id:base64key...]"; standard or URL-safe base64, padding optional. */
export function parseKeys(spec) {
  const keys = new Map();
  for (const [position, entry] of spec.split(",").map((e) => e.trim()).entries()) {
    const at = entry.indexOf(":");
    const id = entry.slice(0, at).trim();
    const text = entry.slice(at + 1).trim();
    if (at < 0 || !KEY_ID.test(id)) {
      throw new Error(`BOSON_KEYS entry ${position + 1} is not id:base64key`);
    }
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
      throw new Error(`BOSON_KEYS key ${id} is not base64`);
    }
    const key = Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (key.length !== 32) throw new Error(`BOSON_KEYS key ${id} is not 32 bytes`);
    keys.set(id, key);
  }
  if (keys.size === 0) throw new Error("BOSON_KEYS holds no key");
  return keys;
}

// §5: extension types are refused, the timestamp (-1) included.
const noExtensions = {
  encode() {
    return null;
  },
  decode(_data, type) {
    throw new DecodeError("malformed-payload", `msgpack extension type ${type}`);
  },
};

/** §4: an 8-byte random prefix and a 4-byte big-endian counter, per writer. */
class Nonces {
  constructor() {
    this.fresh();
  }
  fresh() {
    this.prefix = crypto.randomBytes(8);
    this.counter = 0;
  }
  next() {
    if (this.counter > 0xffffffff) this.fresh();
    const nonce = Buffer.alloc(NONCE_BYTES);
    this.prefix.copy(nonce, 0);
    nonce.writeUInt32BE(this.counter++, 8);
    return nonce;
  }
}

export class Envelopes {
  /** keys: Map id -> 32-byte Buffer; activeKeyId encrypts; cipher: a BOSON_CIPHER value. */
  constructor(keys, { activeKeyId, cipher = "aes-256-gcm" } = {}) {
    if (!(cipher in CIPHERS)) throw new Error(`unknown BOSON_CIPHER ${cipher}`);
    this.keys = keys;
    this.activeKeyId = activeKeyId ?? keys.keys().next().value;
    if (!keys.has(this.activeKeyId)) throw new Error("the active key id is not in BOSON_KEYS");
    this.cipher = CIPHERS[cipher];
    this.nonces = new Nonces();
  }

  /** One envelope of `items` (plain objects, no `kind` key), uncompressed. */
  write(kind, items) {
    if (!KIND.test(kind)) throw new Error(`bad kind ${kind}`);
    if (items.length === 0) throw new Error("an envelope carries at least one item");
    const plain = Buffer.from(encode({ v: WRITE_VERSION[kind] ?? 1, items }));
    if (plain.length > MAX_MESSAGE_BYTES) throw new Error("payload over max_message_bytes");
    const flags = (this.cipher << 2) | (items.length > 1 ? FLAG_BATCH : 0);
    const keyId = Buffer.from(this.activeKeyId, "ascii");
    const kindBytes = Buffer.from(kind, "ascii");
    const nonce = this.nonces.next();
    const header = Buffer.concat([
      MAGIC,
      Buffer.from([VERSION, flags, keyId.length]),
      keyId,
      Buffer.from([kindBytes.length]),
      kindBytes,
      nonce,
    ]);
    const sealer = crypto.createCipheriv(NODE_CIPHER[this.cipher], this.keys.get(this.activeKeyId), nonce, {
      authTagLength: TAG_BYTES,
    });
    sealer.setAAD(header, { plaintextLength: plain.length });
    const body = Buffer.concat([sealer.update(plain), sealer.final(), sealer.getAuthTag()]);
    return Buffer.concat([header, body]);
  }

  /** [kind, items] of an envelope, in the order of checks of §6; DecodeError otherwise. */
  read(envelope) {
    const data = Buffer.from(envelope);
    if (data.length > MAX_MESSAGE_BYTES) throw new DecodeError("oversize", `${data.length} bytes`);
    if (!data.subarray(0, 3).equals(MAGIC.subarray(0, Math.min(3, data.length)))) {
      throw new DecodeError("bad-magic", "not a Boson envelope");
    }
    if (data.length < 6) throw new DecodeError("truncated", "ends inside the header");
    if (data[3] !== VERSION) throw new DecodeError("unsupported-version", `version ${data[3]}`);
    const flags = data[4];
    const cipher = (flags >> 2) & 3;
    if (flags & RESERVED_FLAGS || cipher > 1) {
      throw new DecodeError("unsupported-version", `flags 0x${flags.toString(16)}`);
    }
    const n = data[5];
    if (data.length <= 6 + n) throw new DecodeError("truncated", "ends inside the header");
    const m = data[6 + n];
    const end = 7 + n + m + NONCE_BYTES;
    if (data.length < end + TAG_BYTES) throw new DecodeError("truncated", "ends before its tag");
    const keyId = data.subarray(6, 6 + n).toString("latin1");
    if (!KEY_ID.test(keyId) || !this.keys.has(keyId)) {
      throw new DecodeError("unknown-key", "key id not in BOSON_KEYS");
    }
    const kind = data.subarray(7 + n, 7 + n + m).toString("latin1");
    const header = data.subarray(0, end);
    const nonce = data.subarray(end - NONCE_BYTES, end);
    let plain;
    try {
      const opener = crypto.createDecipheriv(NODE_CIPHER[cipher], this.keys.get(keyId), nonce, {
        authTagLength: TAG_BYTES,
      });
      opener.setAAD(header, { plaintextLength: data.length - end - TAG_BYTES });
      opener.setAuthTag(data.subarray(data.length - TAG_BYTES));
      plain = Buffer.concat([opener.update(data.subarray(end, data.length - TAG_BYTES)), opener.final()]);
    } catch {
      throw new DecodeError("authentication", `under key id ${keyId}`);
    }
    if (!KIND.test(kind)) throw new DecodeError("unknown-kind", "malformed kind");
    if (flags & FLAG_COMPRESSED) plain = decompressBounded(plain);
    let payload;
    try {
      payload = decode(plain, {
        extensionCodec: noExtensions,
        maxStrLength: MAX_MESSAGE_BYTES,
        maxBinLength: MAX_MESSAGE_BYTES,
        maxArrayLength: MAX_MESSAGE_BYTES,
        maxMapLength: MAX_MESSAGE_BYTES,
        maxExtLength: 0,
      });
    } catch (error) {
      if (error instanceof DecodeError) throw error;
      throw new DecodeError("malformed-payload", "not valid msgpack");
    }
    const shape =
      payload !== null &&
      typeof payload === "object" &&
      !Array.isArray(payload) &&
      Object.keys(payload).length === 2 &&
      Number.isInteger(payload.v) &&
      payload.v >= 1 &&
      Array.isArray(payload.items) &&
      payload.items.length > 0 &&
      payload.items.every((item) => item !== null && typeof item === "object" && !Array.isArray(item));
    if (!shape) throw new DecodeError("malformed-payload", "not {v, items}");
    if (payload.items.length > 1 !== Boolean(flags & FLAG_BATCH)) {
      throw new DecodeError("malformed-payload", "batch flag disagrees with the items");
    }
    if (!(READ_VERSIONS[kind] ?? [1]).includes(payload.v)) {
      throw new DecodeError("schema", `${kind} schema version ${payload.v}`);
    }
    return [kind, payload.items];
  }
}

// §5-6: one zstd frame that declares its content size (read before allocating),
// at most max_message_bytes, and nothing after the frame.
function decompressBounded(frame) {
  const declared = frameContentSize(frame);
  if (declared === null) throw new DecodeError("decompression-bomb", "no declared content size");
  if (declared > MAX_MESSAGE_BYTES) throw new DecodeError("decompression-bomb", `${declared} bytes`);
  let out;
  try {
    out = decompress(frame, new Uint8Array(declared));
  } catch {
    throw new DecodeError("malformed-payload", "the zstd frame does not decompress");
  }
  if (out.length !== declared) throw new DecodeError("malformed-payload", "frame size mismatch");
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

// The frame header (RFC 8878 §3.1.1.1): magic, descriptor, [window], [dict id], [content size].
function frameContentSize(frame) {
  if (frame.length < 5 || frame.readUInt32LE(0) !== 0xfd2fb528) {
    throw new DecodeError("malformed-payload", "the compressed payload is not a zstd frame");
  }
  const descriptor = frame[4];
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][descriptor & 3];
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (fcsBytes === 0) return null;
  const at = 5 + (singleSegment ? 0 : 1) + dictBytes;
  if (frame.length < at + fcsBytes) throw new DecodeError("malformed-payload", "short zstd header");
  if (fcsBytes === 1) return frame[at];
  if (fcsBytes === 2) return frame.readUInt16LE(at) + 256;
  if (fcsBytes === 4) return frame.readUInt32LE(at);
  const size = frame.readBigUInt64LE(at);
  return size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(size);
}
