// E-PG proof bundle verifier, run entirely in the browser.
//
// It runs the checks of `epg audit verify`, with the same names, in the
// same order, and trusts neither the node that served this page nor the
// bundle: hashes are computed here with WebCrypto (SHA-256), the anchored
// root is read from the chain with JSON-RPC calls to the URL the auditor
// typed. No dependency; nothing is sent anywhere but that RPC endpoint.
//
// Bundle format: src/transparency/bundle.rs. Leaf encoding: version byte
// 0x01, six length-prefixed ASCII strings (origin, settlement_id,
// merchant_id, source_id, kind, asset), the amount as 32 big-endian bytes,
// settled_at as 8 big-endian bytes. Leaf hash: SHA-256(0x00 ‖ data ‖ salt);
// node hash: SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1).
"use strict";

// Selectors and topics are keccak-256 hashes of the Solidity signatures;
// WebCrypto has no keccak, so they are written out. Anyone can recompute
// them (e.g. `cast sig "checkpointBySize(uint64)"`); a test does.
const SELECTOR_CHECKPOINT_BY_SIZE = "0x1710bea2"; // checkpointBySize(uint64)
const SELECTOR_VERIFY_INCLUSION_AT = "0x5edbd1af"; // verifyInclusionAt(uint256,bytes32,uint256,bytes32[])
const TOPIC_CHECKPOINT_ANCHORED = // CheckpointAnchored(uint256,uint64,bytes32,bytes32)
  "0x335a01afc035944c81878d679fd332a5fb391c25b50a16bb3529f6b13c57a884";
// LeafKind in src/transparency/leaf.rs.
const LEAF_KINDS = [
  "payment", "refund", "fee", "dispute", "dispute_reversal", "crypto_receipt",
  "payout", "adjustment",
];

// ---------------------------------------------------------------- bytes

function hexToBytes(hex, field) {
  const s = String(hex).startsWith("0x") ? String(hex).slice(2) : String(hex);
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
    throw new Error(`${field} is not hex`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function short(hex) {
  return hex.length <= 18 ? hex : `${hex.slice(0, 10)}…${hex.slice(-4)}`;
}

// A 32-byte big-endian word as a BigInt.
function wordToBigInt(bytes) {
  return BigInt(bytesToHex(bytes));
}

// ---------------------------------------------------------------- hashes

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function leafHash(data, salt) {
  return sha256(concat(new Uint8Array([0]), data, salt));
}

function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

// RFC 9162 §2.1.3.2: the root that `path` leads to from leaf `index` of a
// tree of `size` leaves. Mirrors merkle::root_from_inclusion in the node.
async function rootFromInclusion(hash, index, size, path) {
  if (index >= size) throw new Error(`leaf index ${index} is not below the tree size ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = hash;
  for (const p of path) {
    if (sn === 0n) throw new Error("the path is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the path is too short");
  return r;
}

// ---------------------------------------------------------------- leaf

// Decodes canonical leaf bytes; throws with the field at fault.
function decodeLeaf(bytes) {
  let at = 0;
  const take = (n, field) => {
    if (at + n > bytes.length) throw new Error(`leaf data ends inside \`${field}\``);
    const out = bytes.slice(at, at + n);
    at += n;
    return out;
  };
  const str8 = (field) => {
    const len = take(1, field)[0];
    const raw = take(len, field);
    if (len === 0) throw new Error(`leaf field \`${field}\`: empty`);
    if (!raw.every((b) => b >= 0x21 && b <= 0x7e)) {
      throw new Error(`leaf field \`${field}\`: not visible ASCII`);
    }
    return String.fromCharCode(...raw);
  };
  const version = take(1, "version")[0];
  if (version !== 1) throw new Error(`unknown leaf encoding version ${version}`);
  const leaf = { version };
  leaf.origin = str8("origin");
  leaf.settlement_id = str8("settlement_id");
  leaf.merchant_id = str8("merchant_id");
  leaf.source_id = str8("source_id");
  leaf.kind = str8("kind");
  if (!LEAF_KINDS.includes(leaf.kind)) throw new Error(`unknown leaf kind \`${leaf.kind}\``);
  leaf.asset = str8("asset");
  leaf.amount = wordToBigInt(take(32, "amount")).toString();
  leaf.settled_at = Number(BigInt(bytesToHex(take(8, "settled_at"))));
  if (at !== bytes.length) throw new Error(`${bytes.length - at} bytes after the last field of the leaf`);
  return leaf;
}

// ---------------------------------------------------------------- chain

let rpcId = 0;
async function rpc(url, method, params) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
  });
  const body = await response.json();
  if (body.error) throw new Error(`${method}: ${body.error.message || JSON.stringify(body.error)}`);
  return body.result;
}

function word(n) {
  return BigInt(n).toString(16).padStart(64, "0");
}

function words(hex) {
  const s = hex.startsWith("0x") ? hex.slice(2) : hex;
  const out = [];
  for (let i = 0; i + 64 <= s.length; i += 64) out.push("0x" + s.slice(i, i + 64));
  return out;
}

// ---------------------------------------------------------------- checks

const PASS = "pass", FAIL = "fail", SKIPPED = "skipped";

async function verify(bundleText, rpcUrl, confirmations) {
  const checks = [];
  const add = (name, status, detail) => checks.push({ name, status, detail });
  const skipRest = (names, why) => names.forEach((n) => add(n, SKIPPED, why));
  const ON_CHAIN = ["chain id", "checkpoint on chain", "contract verifyInclusionAt",
    "anchor transaction", "confirmations"];

  // 1. bundle format
  let b;
  try {
    b = JSON.parse(bundleText);
    if (!b || b.object !== "proof_bundle" || !b.leaf || !b.checkpoint || !b.anchor
        || !Array.isArray(b.inclusion_path)) {
      throw new Error("missing fields of a proof bundle");
    }
  } catch (e) {
    add("bundle format", FAIL, `not a proof bundle: ${e.message}`);
    skipRest(["leaf data", "inclusion", ...ON_CHAIN], "no bundle to check");
    return checks;
  }
  if (b.version === 1) add("bundle format", PASS, `proof bundle version ${b.version}`);
  else add("bundle format", FAIL, `version ${b.version} (this page reads version 1)`);

  // 2. leaf data
  let data = null, salt = null;
  try {
    data = hexToBytes(b.leaf.data_hex, "leaf.data_hex");
    salt = hexToBytes(b.leaf.salt_hex, "leaf.salt_hex");
    if (salt.length !== 32) throw new Error(`leaf.salt_hex has ${salt.length} bytes, not 32`);
    const leaf = decodeLeaf(data);
    const d = b.leaf.decoded || {};
    for (const key of Object.keys(leaf)) {
      if (String(d[key]) !== String(leaf[key])) {
        throw new Error(`leaf.decoded.${key} is ${JSON.stringify(d[key])}, the data says ${JSON.stringify(leaf[key])}`);
      }
    }
    if (Object.keys(d).length !== Object.keys(leaf).length) {
      throw new Error("leaf.decoded has fields the data does not have");
    }
    if (leaf.origin !== b.checkpoint.origin) {
      throw new Error(`the leaf belongs to log \`${leaf.origin}\`, the checkpoint to \`${b.checkpoint.origin}\``);
    }
    const when = new Date(leaf.settled_at * 1000).toISOString().replace(".000Z", "Z");
    add("leaf data", PASS, `${leaf.kind} ${leaf.source_id} of ${leaf.merchant_id}: ${leaf.amount} ${leaf.asset}, settlement ${leaf.settlement_id}, settled at ${when}`);
  } catch (e) {
    add("leaf data", FAIL, e.message);
  }

  // 3. inclusion
  let hash = null, path = null, root = null;
  const index = BigInt(b.leaf_index ?? -1);
  const size = BigInt(b.tree_size ?? 0);
  try {
    if (!data || !salt || salt.length !== 32) {
      add("inclusion", SKIPPED, "no leaf hash: the leaf bytes are unusable");
    } else {
      hash = await leafHash(data, salt);
      path = b.inclusion_path.map((h, i) => {
        const p = hexToBytes(h, `inclusion_path[${i}]`);
        if (p.length !== 32) throw new Error("inclusion_path has an element that is not 32 bytes of hex");
        return p;
      });
      root = hexToBytes(b.checkpoint.root, "checkpoint.root");
      if (root.length !== 32) throw new Error("checkpoint.root is not 32 bytes of hex");
      if (BigInt(b.checkpoint.tree_size) !== size) {
        throw new Error(`the path is for a tree of ${size} leaves, the checkpoint has ${b.checkpoint.tree_size}`);
      }
      const computed = await rootFromInclusion(hash, index, size, path);
      if (!equalBytes(computed, root)) {
        throw new Error(`leaf ${index} and its path lead to root ${bytesToHex(computed)}, not the checkpoint's ${bytesToHex(root)}`);
      }
      add("inclusion", PASS, `leaf ${index} (hash ${short(bytesToHex(hash))}) and ${path.length} path hashes lead to root ${bytesToHex(root)} of the ${size}-leaf tree`);
    }
  } catch (e) {
    add("inclusion", FAIL, e.message);
  }

  // 4. chain id
  const contract = String(b.anchor.contract).toLowerCase();
  try {
    const id = BigInt(await rpc(rpcUrl, "eth_chainId", []));
    if (id !== BigInt(b.anchor.chain_id)) {
      add("chain id", FAIL, `${rpcUrl} serves chain ${id}, the bundle names chain ${b.anchor.chain_id}`);
      skipRest(ON_CHAIN.slice(1), "wrong chain");
      return checks;
    }
    add("chain id", PASS, `${rpcUrl} serves chain ${id}`);
  } catch (e) {
    add("chain id", FAIL, `cannot reach ${rpcUrl}: ${e.message}`);
    skipRest(ON_CHAIN.slice(1), "no chain to ask");
    return checks;
  }

  // 5. checkpoint on chain: the contract's checkpoint of this size, and the
  // CheckpointAnchored log of its sequence number.
  let seq = null, anchoredLog = null;
  try {
    const out = await rpc(rpcUrl, "eth_call", [{
      to: contract, data: SELECTOR_CHECKPOINT_BY_SIZE + word(b.checkpoint.tree_size),
    }, "latest"]);
    const [seqWord, sizeWord, rootWord] = words(out);
    seq = BigInt(seqWord);
    if (BigInt(sizeWord) !== BigInt(b.checkpoint.tree_size)) {
      throw new Error(`the contract answered size ${BigInt(sizeWord)} for ${b.checkpoint.tree_size}`);
    }
    if (!root) throw new Error("checkpoint.root is not 32 bytes of hex");
    if (rootWord !== bytesToHex(root)) {
      throw new Error(`the contract's checkpoint #${seq} of ${b.checkpoint.tree_size} leaves has root ${rootWord}, the bundle ${bytesToHex(root)}`);
    }
    const logs = await rpc(rpcUrl, "eth_getLogs", [{
      address: contract, fromBlock: "0x0", toBlock: "latest",
      topics: [TOPIC_CHECKPOINT_ANCHORED, "0x" + word(seq)],
    }]);
    const matching = logs.filter((l) => !l.removed);
    anchoredLog = matching[matching.length - 1];
    if (!anchoredLog) throw new Error(`${contract} holds checkpoint #${seq} but the chain has no CheckpointAnchored #${seq} from it`);
    const [logSize, logRoot] = words(anchoredLog.data);
    if (BigInt(logSize) !== BigInt(b.checkpoint.tree_size) || logRoot !== bytesToHex(root)) {
      throw new Error(`CheckpointAnchored #${seq} names size ${BigInt(logSize)} root ${logRoot}, not the contract's checkpoint`);
    }
    add("checkpoint on chain", PASS, `${contract} holds checkpoint #${seq}: ${b.checkpoint.tree_size} leaves, root ${bytesToHex(root)}, anchored in block ${BigInt(anchoredLog.blockNumber)}`);
  } catch (e) {
    add("checkpoint on chain", FAIL, e.message.includes("execution reverted")
      ? `${contract} holds no checkpoint of ${b.checkpoint.tree_size} leaves (${e.message})` : e.message);
    seq = null;
  }

  // 6. contract verifyInclusionAt: the contract's own verifier, with the
  // size and root it stores.
  if (seq === null) {
    add("contract verifyInclusionAt", SKIPPED, "no checkpoint on chain to verify against");
  } else if (!hash || !path) {
    add("contract verifyInclusionAt", SKIPPED, "the bundle's hashes are unusable");
  } else {
    try {
      const call = SELECTOR_VERIFY_INCLUSION_AT + word(seq) + bytesToHex(hash).slice(2) + word(index)
        + word(128) + word(path.length) + path.map((p) => bytesToHex(p).slice(2)).join("");
      const ok = BigInt(await rpc(rpcUrl, "eth_call", [{ to: contract, data: call }, "latest"])) === 1n;
      if (ok) add("contract verifyInclusionAt", PASS, `verifyInclusionAt(#${seq}, leaf ${index}) returned true`);
      else add("contract verifyInclusionAt", FAIL, `verifyInclusionAt(#${seq}, leaf ${index}) returned false`);
    } catch (e) {
      add("contract verifyInclusionAt", FAIL, `call failed: ${e.message}`);
    }
  }

  // 7. anchor transaction
  let block = null;
  try {
    const tx = String(b.anchor.tx_hash).toLowerCase();
    if (!/^0x[0-9a-f]{64}$/.test(tx)) throw new Error(`anchor.tx_hash \`${b.anchor.tx_hash}\` is not a hash`);
    const receipt = await rpc(rpcUrl, "eth_getTransactionReceipt", [tx]);
    if (!receipt) throw new Error(`transaction ${tx} is not on this chain`);
    if (BigInt(receipt.status) !== 1n) throw new Error(`transaction ${tx} reverted`);
    const number = BigInt(receipt.blockNumber);
    if (number !== BigInt(b.anchor.block_number)) {
      throw new Error(`transaction ${tx} is in block ${number}, the bundle says ${b.anchor.block_number}`);
    }
    const canonical = await rpc(rpcUrl, "eth_getBlockByNumber", ["0x" + number.toString(16), false]);
    if (!canonical || canonical.hash !== receipt.blockHash) {
      throw new Error(`block ${number} of the receipt (${receipt.blockHash}) is not the canonical block at that height`);
    }
    const event = receipt.logs.find((l) => l.address.toLowerCase() === contract
      && l.topics[0] === TOPIC_CHECKPOINT_ANCHORED);
    if (!event) throw new Error(`transaction ${tx} emitted no CheckpointAnchored from ${contract}`);
    const [evSize, evRoot] = words(event.data);
    if (BigInt(evSize) !== BigInt(b.checkpoint.tree_size) || !root || evRoot !== bytesToHex(root)) {
      throw new Error(`transaction ${tx} anchored size ${BigInt(evSize)} root ${evRoot}, not the bundle's checkpoint`);
    }
    if (anchoredLog && (anchoredLog.transactionHash.toLowerCase() !== tx
        || BigInt(anchoredLog.blockNumber) !== number)) {
      throw new Error(`the contract's checkpoint was anchored by ${anchoredLog.transactionHash} in block ${BigInt(anchoredLog.blockNumber)}, not by ${tx} in block ${number}`);
    }
    block = number;
    add("anchor transaction", PASS, `${tx} in canonical block ${number} emitted CheckpointAnchored(#${BigInt(event.topics[1])}, ${BigInt(evSize)}, ${short(evRoot)})`);
  } catch (e) {
    add("anchor transaction", FAIL, e.message);
  }

  // 8. confirmations
  if (block === null) {
    add("confirmations", SKIPPED, "no anchoring block");
  } else {
    try {
      const head = BigInt(await rpc(rpcUrl, "eth_blockNumber", []));
      const have = head >= block ? head - block + 1n : 0n;
      const need = BigInt(confirmations);
      if (have >= need) add("confirmations", PASS, `${have} ≥ ${need} (block ${block}, head ${head})`);
      else add("confirmations", FAIL, `only ${have} of ${need} (block ${block}, head ${head})`);
    } catch (e) {
      add("confirmations", FAIL, `no chain head: ${e.message}`);
    }
  }
  return checks;
}

function verdict(checks, bundleText) {
  if (checks.length > 0 && checks.every((c) => c.status === PASS)) {
    const b = JSON.parse(bundleText);
    return `VERIFIED: leaf ${b.leaf_index} is in the log state anchored by ${b.anchor.contract} on chain ${b.anchor.chain_id} in block ${b.anchor.block_number}`;
  }
  const failed = checks.filter((c) => c.status === FAIL).map((c) => c.name);
  return failed.length === 0 ? "NOT VERIFIED: some checks could not run"
    : `NOT VERIFIED: failed check(s): ${failed.join(", ")}`;
}

// ---------------------------------------------------------------- page

function show(checks, bundleText, rpcUrl) {
  const list = document.getElementById("checks");
  list.replaceChildren();
  for (const c of checks) {
    const li = document.createElement("li");
    li.className = c.status;
    li.dataset.check = c.name;
    const mark = c.status === PASS ? "✓" : c.status === FAIL ? "✗" : "–";
    li.textContent = `${mark} ${c.name}: ${c.detail}`;
    list.append(li);
  }
  const result = document.getElementById("verdict");
  result.textContent = verdict(checks, bundleText);
  result.className = checks.every((c) => c.status === PASS) ? "pass" : "fail";
  document.getElementById("provenance").textContent =
    `Computed in this browser at ${new Date().toISOString()} from the bundle and the chain at ${rpcUrl}; the node that served this page was not asked.`;
  document.getElementById("result").hidden = false;
  document.body.dataset.verdict = result.className;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("verify-form");
  const text = document.getElementById("bundle");
  document.getElementById("file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file) text.value = await file.text();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const rpcUrl = document.getElementById("rpc").value.trim();
    const confirmations = document.getElementById("confirmations").value || "1";
    document.body.dataset.verdict = "running";
    const checks = await verify(text.value, rpcUrl, confirmations);
    show(checks, text.value, rpcUrl);
  });
});
