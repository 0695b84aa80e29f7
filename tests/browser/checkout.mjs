// The hosted checkout in Debian's Chromium, driven by playwright-core,
// against a live node and anvil (started by tests/it/checkout_browser.rs,
// which passes them in the environment):
//   EPG_BASE      the node, http://127.0.0.1:PORT
//   EPG_SK        a secret key of the demo merchant
//   EPG_ANVIL     anvil's JSON-RPC URL (its accounts are unlocked)
//   EPG_CHROMIUM  the browser binary
//   EPG_SCREENS   where screenshots go
// Every flow ends with a screenshot of its final state. Exits non-zero on
// the first failure, saying which flow and what was expected.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");
const jsQR = require("jsqr");

const BASE = need("EPG_BASE");
const SK = need("EPG_SK");
const ANVIL = need("EPG_ANVIL");
const SCREENS = need("EPG_SCREENS");
const CHROMIUM = need("EPG_CHROMIUM");
// Anvil's default accounts #1 and #2: the customer's browser wallet, and
// someone paying part of an amount from elsewhere.
const WALLET = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const OTHER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";
// Generous: the suite runs many nodes and chains at once on few cores.
const WAIT = 60000;

function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (run through cargo nextest: checkout_browser)`);
  }
  return value;
}

function check(condition, what) {
  if (!condition) {
    throw new Error(`expected: ${what}`);
  }
}

async function api(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: {
      Authorization: `Bearer ${SK}`,
      "Content-Type": "application/json",
      "Idempotency-Key": randomUUID(),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  check(response.status === 200, `${method} ${path} answers 200, got ${response.status}: ${JSON.stringify(data)}`);
  return data;
}

let rpcId = 0;
async function rpc(method, params = []) {
  const response = await fetch(ANVIL, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
  });
  return response.json();
}

async function rpcOk(method, params) {
  const answer = await rpc(method, params);
  check(!answer.error, `${method} succeeds: ${JSON.stringify(answer.error)}`);
  return answer.result;
}

async function mine(n = 1) {
  await rpcOk("anvil_mine", ["0x" + n.toString(16)]);
}

const word = (hex) => hex.replace(/^0x/, "").toLowerCase().padStart(64, "0");
const uint = (value) => BigInt(value).toString(16).padStart(64, "0");

async function sendFrom(from, to, data) {
  const hash = await rpcOk("eth_sendTransaction", [{ from, to, data }]);
  // Anvil mines it at once, but a loaded machine may answer before it has.
  let receipt = null;
  for (let i = 0; i < 100 && !receipt; i++) {
    receipt = await rpcOk("eth_getTransactionReceipt", [hash]);
    if (!receipt) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  check(receipt && receipt.status === "0x1", `transaction ${hash} succeeds: ${JSON.stringify(receipt)}`);
}

let browser;
const screens = [];

async function open(url, { width = 1280, height = 900, locale = "en-US", wallet = false, unknownChain = false } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale });
  if (wallet) {
    // The injected EIP-1193 provider: accounts and chain switching answered
    // here, everything else (eth_sendTransaction, eth_signTypedData_v4,
    // eth_call, receipts) forwarded to anvil, whose accounts are unlocked.
    await context.exposeFunction("__epgAnvil", (method, params) => rpc(method, params));
    const chainId = await rpcOk("eth_chainId");
    await context.addInitScript(
      ({ account, chainId, unknownChain }) => {
        // A wallet that does not know the devnet until it is added (EIP-3085).
        let known = !unknownChain;
        // Such a wallet starts on another chain (mainnet) until it switches.
        let current = unknownChain ? "0x1" : chainId;
        window.__walletAdded = [];
        window.ethereum = {
          isEpgTestWallet: true,
          request: async ({ method, params }) => {
            if (method === "eth_requestAccounts" || method === "eth_accounts") {
              return [account];
            }
            if (method === "wallet_addEthereumChain") {
              window.__walletAdded.push(params[0]);
              known = known || params[0].chainId.toLowerCase() === chainId;
              return null;
            }
            if (method === "eth_chainId") {
              return current;
            }
            if (method === "wallet_switchEthereumChain") {
              if (known && params[0].chainId.toLowerCase() === chainId) {
                current = chainId;
                return null;
              }
              const error = new Error("Unrecognized chain");
              error.code = 4902;
              throw error;
            }
            const answer = await window.__epgAnvil(method, params || []);
            if (answer.error) {
              const error = new Error(answer.error.message);
              error.code = answer.error.code;
              throw error;
            }
            return answer.result;
          },
        };
      },
      { account: WALLET, chainId, unknownChain },
    );
  }
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // The browser asks for /favicon.ico by itself; the node has none.
    if (m.type() === "error" && !String(m.location().url).endsWith("/favicon.ico")) {
      errors.push(m.text());
    }
  });
  page.errors = errors;
  await page.goto(url);
  return page;
}

async function screenshot(page, name) {
  const path = join(SCREENS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  screens.push(path);
}

async function visibleText(page, selector, pattern, what) {
  try {
    await page.waitForFunction(
      ({ selector, source, flags }) => {
        const el = document.querySelector(selector);
        return !!el && !el.closest("[hidden]") && new RegExp(source, flags).test(el.textContent);
      },
      { selector, source: pattern.source, flags: pattern.flags },
      { timeout: WAIT },
    );
  } catch (e) {
    const text = await page.evaluate((s) => document.querySelector(s)?.textContent, selector).catch(() => "?");
    throw new Error(`expected ${what}: ${selector} to show ${pattern}, it shows ${JSON.stringify(text)}`);
  }
}

async function payment(body) {
  return api("POST", "/v1/payments", { currency: "usd", ...body });
}

async function fillCard(page, number, { month = "12", year = "2034", cvc = "123" } = {}) {
  await page.fill("#card-number", "");
  await page.type("#card-number", number);
  await page.fill("#card-exp-month", month);
  await page.fill("#card-exp-year", year);
  await page.fill("#card-cvc", cvc);
}

// ------------------------------------------------------------------ flows

const flows = {};

flows.card_success_returns = async () => {
  const created = await payment({
    amount: 2500,
    payment_method_types: ["card"],
    description: "Order 1001: two coffees",
    return_url: `${BASE}/healthz?shop=demo`,
  });
  check(created.checkout_url.startsWith(`${BASE}/checkout/${created.id}?client_secret=`), "checkout_url on the payment");
  const page = await open(created.checkout_url);
  await visibleText(page, "#amount", /^\$25\.00$/, "the amount in dollars");
  await visibleText(page, "#merchant", /Test Merchant/, "the merchant's name");
  await visibleText(page, "#description", /Order 1001: two coffees/, "the description");
  // Checked as typed: a mistyped number is flagged before any request.
  await page.type("#card-number", "4242424242424241");
  await visibleText(page, "#card-brand", /Visa/, "the brand");
  await visibleText(page, "#card-number-error", /not valid/, "the Luhn check");
  await fillCard(page, "4242424242424242");
  check(await page.isHidden("#card-number-error"), "no error for a valid number");
  await page.fill("#card-exp-month", "01");
  await page.fill("#card-exp-year", "2020");
  await visibleText(page, "#card-expiry-error", /expired/, "the expiry check");
  await page.fill("#card-exp-year", "2034");
  check(await page.isHidden("#card-expiry-error"), "no error for a valid expiry");
  // Keyboard only: the pay button is reached by Tab from the CVC.
  await page.focus("#card-cvc");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.textContent === "Pay"), "Tab from the CVC reaches Pay");
  await page.keyboard.press("Enter");
  await visibleText(page, "#result-title", /Payment successful/, "success");
  await screenshot(page, "card-success");
  await page.waitForURL((url) => url.href.startsWith(`${BASE}/healthz?shop=demo&payment_id=${created.id}`), { timeout: WAIT });
  check(page.errors.length === 0, `no script errors: ${page.errors}`);
  await page.context().close();
};

flows.decline_then_another_card = async () => {
  const created = await payment({ amount: 1999, payment_method_types: ["card"] });
  const page = await open(created.checkout_url);
  await fillCard(page, "4000000000000002");
  await page.click("#card-form button[type=submit]");
  await visibleText(page, "#message", /declined/, "the decline");
  await screenshot(page, "card-declined");
  await fillCard(page, "4242424242424242");
  await page.click("#card-form button[type=submit]");
  await visibleText(page, "#result-title", /Payment successful/, "success with another card");
  await page.context().close();
};

flows.three_d_secure = async () => {
  const created = await payment({ amount: 4200, payment_method_types: ["card"] });
  const page = await open(created.checkout_url);
  await fillCard(page, "4000002760003184");
  await page.click("#card-form button[type=submit]");
  await visibleText(page, "#challenge h2", /Verify your card/, "the 3-D Secure challenge");
  check(await page.evaluate(() => document.activeElement.id === "otp-code"), "the code field has focus");
  await page.fill("#otp-code", "000000");
  await page.keyboard.press("Enter");
  // A wrong code fails this attempt: the card form is back, saying why.
  await visibleText(page, "#message", /incorrect/, "a wrong code is refused");
  await screenshot(page, "three-d-secure-wrong-code");
  await fillCard(page, "4000002760003184");
  await page.click("#card-form button[type=submit]");
  await visibleText(page, "#challenge h2", /Verify your card/, "the challenge again");
  await page.fill("#otp-code", "123456");
  await page.keyboard.press("Enter");
  await visibleText(page, "#result-title", /Payment successful/, "success after the right code");
  await page.context().close();
};

flows.bank_transfer = async () => {
  const created = await payment({ amount: 125000, payment_method_types: ["card", "bank_transfer"] });
  const page = await open(created.checkout_url);
  await page.check("#method-list input[value=bank_transfer]");
  await page.click("#offline-form button[type=submit]");
  await visibleText(page, "#action-title", /Transfer the amount/, "bank instructions");
  await visibleText(page, "#action-details", /IBAN.*Reference/s, "the account and the reference");
  await screenshot(page, "bank-transfer");
  await page.context().close();
};

flows.zh_cn = async () => {
  const created = await payment({ amount: 2500, payment_method_types: ["card", "crypto"], description: "订单 1002" });
  // By Accept-Language (the browser's language) ...
  let page = await open(created.checkout_url, { locale: "zh-CN" });
  await visibleText(page, "legend", /付款方式/, "Chinese by Accept-Language");
  check((await page.getAttribute("html", "lang")) === "zh-CN", "lang=zh-CN");
  await visibleText(page, "#amount", /US\$25\.00/, "the amount in Chinese format");
  await visibleText(page, "#method-list", /银行卡.*加密货币/s, "method names in Chinese");
  await screenshot(page, "zh-CN");
  await page.context().close();
  // ... or by ?locale=, which wins.
  page = await open(created.checkout_url + "&locale=zh-CN", { locale: "en-US" });
  await visibleText(page, "#card-form label[for=card-number]", /卡号/, "Chinese by ?locale=");
  await page.context().close();
};

async function qrText(page) {
  await page.waitForFunction(() => {
    const img = document.getElementById("crypto-qr");
    return img && !img.hidden && img.complete && img.naturalWidth > 0;
  }, null, { timeout: WAIT });
  const side = 480;
  const pixels = await page.evaluate((side) => {
    const img = document.getElementById("crypto-qr");
    const canvas = document.createElement("canvas");
    canvas.width = side;
    canvas.height = side;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, side, side);
    return Array.from(ctx.getImageData(0, 0, side, side).data);
  }, side);
  const code = jsQR(Uint8ClampedArray.from(pixels), side, side);
  check(code, "the QR code decodes");
  return code.data;
}

async function quote(page) {
  await page.click("#crypto-form button[type=submit]");
  await visibleText(page, "#crypto-title", /Send USDC/, "the crypto step");
}

flows.crypto_wallet_to_paid = async () => {
  const created = await payment({ amount: 1234, payment_method_types: ["crypto"], description: "Sticker pack" });
  // A phone-sized screen.
  const page = await open(created.checkout_url, { width: 360, height: 780, wallet: true });
  await visibleText(page, "#crypto-options", /USDC on local devnet/, "the accepted assets");
  await quote(page);
  await visibleText(page, "#crypto-amount", /^12\.34 USDC$/, "the amount in the asset");
  await visibleText(page, "#crypto-fiat", /\$12\.34/, "the amount in fiat");
  await visibleText(page, "#crypto-countdown", /1[45]:[0-9]{2}/, "the countdown");
  const api1 = await api("GET", `/v1/payments/${created.id}`);
  const uri = api1.next_action.crypto.deposit_uri || api1.next_action.crypto.uri;
  check((await qrText(page)) === uri, "the QR code holds the API's payment URI");
  await visibleText(page, "#crypto-uri", new RegExp(uri.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), "the URI as text");
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "nothing wider than the phone");
  await screenshot(page, "crypto-qr-phone");
  // No reload from here on: a marker on the window survives only if so.
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  await page.click("#tab-wallet");
  await page.click("#wallet-pay");
  await visibleText(page, "#wallet-steps", /Sign the spending permission/, "the permit step");
  await visibleText(page, "#status", /1 of 3 confirmations/, "the first confirmation");
  await mine(1);
  await visibleText(page, "#status", /2 of 3 confirmations/, "the second confirmation");
  await mine(1);
  await visibleText(page, "#result-title", /Payment successful/, "paid without reloading");
  check(await page.evaluate(() => window.__sameDocument === true), "the page was not reloaded");
  await screenshot(page, "crypto-paid-phone");
  check(page.errors.length === 0, `no script errors: ${page.errors}`);
  await page.context().close();
};

flows.crypto_underpaid_then_topped_up = async () => {
  const created = await payment({ amount: 2000, payment_method_types: ["crypto"] });
  const page = await open(created.checkout_url, { wallet: true });
  await quote(page);
  const c = (await api("GET", `/v1/payments/${created.id}`)).next_action.crypto;
  // Half of it, from another account, through the router.
  const half = BigInt(c.amount) / 2n;
  await sendFrom(OTHER, c.token_address, "0x095ea7b3" + word(c.router_address) + uint(half));
  await sendFrom(OTHER, c.router_address, "0x5e5571ac" + word(c.token_address) + uint(half) + word(c.payment_reference));
  await visibleText(page, "#status", /Received 10 USDC of 20 USDC: send the rest, 10 USDC/, "the underpayment");
  await screenshot(page, "crypto-underpaid");
  await page.click("#tab-wallet");
  await page.click("#wallet-pay");
  await visibleText(page, "#wallet-steps", /Sent\. This page follows/, "the top-up sent");
  await mine(3);
  await visibleText(page, "#result-title", /Payment successful/, "paid once topped up");
  await screenshot(page, "crypto-topped-up");
  await page.context().close();
};

flows.crypto_eth_native_by_wallet = async () => {
  const created = await payment({ amount: 3000, payment_method_types: ["crypto"] });
  // This wallet has never seen the chain: the page asks it to add it first.
  const page = await open(created.checkout_url, { wallet: true, unknownChain: true });
  await page.check("#crypto-options input[value='1']");
  await page.click("#crypto-form button[type=submit]");
  await visibleText(page, "#crypto-title", /Send ETH/, "the ETH quote");
  await page.click("#tab-wallet");
  await page.click("#wallet-pay");
  await visibleText(page, "#wallet-steps", /Sent\. This page follows/, "payNative sent");
  const added = await page.evaluate(() => window.__walletAdded);
  check(added.length === 1, `the wallet was asked to add the chain once: ${JSON.stringify(added)}`);
  check(
    added[0].chainId === "0x7a69" && added[0].nativeCurrency.symbol === "ETH" && /^http:\/\/127\.0\.0\.1:/.test(added[0].rpcUrls[0]),
    `the chain added is the devnet, with its public RPC URL: ${JSON.stringify(added[0])}`,
  );
  await mine(3);
  await visibleText(page, "#result-title", /Payment successful/, "paid in ETH");
  await visibleText(page, "#status", /Received [0-9.]+ ETH on chain/, "the amount received");
  await page.context().close();
};

flows.crypto_overpaid_explained = async () => {
  const created = await payment({ amount: 1000, payment_method_types: ["crypto"] });
  const page = await open(created.checkout_url);
  await quote(page);
  const c = (await api("GET", `/v1/payments/${created.id}`)).next_action.crypto;
  const more = BigInt(c.amount) + 2500000n;
  await sendFrom(OTHER, c.token_address, "0x095ea7b3" + word(c.router_address) + uint(more));
  await sendFrom(OTHER, c.router_address, "0x5e5571ac" + word(c.token_address) + uint(more) + word(c.payment_reference));
  await mine(3);
  await visibleText(page, "#result-title", /Payment successful/, "paid");
  await visibleText(page, "#status", /You sent 12\.5 USDC, 2\.5 USDC more than the 10 USDC asked/, "the overpayment explained");
  await screenshot(page, "crypto-overpaid");
  await page.context().close();
};

// Last: it moves the chain's clock 20 minutes ahead.
flows.crypto_expired_new_quote = async () => {
  const created = await payment({ amount: 500, payment_method_types: ["crypto"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.clock.install();
  await page.goto(created.checkout_url);
  await quote(page);
  const first = (await api("GET", `/v1/payments/${created.id}`)).next_action.crypto;
  // The quote lapses by the chain's clock (as the node decides) and by
  // the page's.
  const block = await rpcOk("eth_getBlockByNumber", ["latest", false]);
  await rpcOk("evm_mine", [Number(block.timestamp) + 20 * 60]);
  await page.clock.fastForward("16:00");
  await visibleText(page, "#status", /expired before any payment arrived/, "the expiry");
  await visibleText(page, "#crypto-countdown", /expired/, "the countdown at its end");
  await screenshot(page, "crypto-expired");
  // The node may need a moment to see the block past the expiry.
  for (let i = 0; ; i++) {
    await page.clock.setSystemTime(Date.now() + 16 * 60 * 1000);
    await page.click("#requote");
    const now = await api("GET", `/v1/payments/${created.id}`);
    if (now.next_action.crypto.payment_reference !== first.payment_reference) {
      break;
    }
    check(i < 20, "a new quote is given once the old one lapsed");
    await new Promise((r) => setTimeout(r, 500));
  }
  await page.clock.setSystemTime(Date.now());
  await visibleText(page, "#crypto-countdown", /holds for 1[45]:/, "a fresh countdown");
  await visibleText(page, "#status", /Waiting for your payment/, "waiting again");
  await screenshot(page, "crypto-new-quote");
  await context.close();
};

// ------------------------------------------------------------------ main

mkdirSync(SCREENS, { recursive: true });
browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const only = process.env.EPG_FLOWS ? process.env.EPG_FLOWS.split(",") : Object.keys(flows);
let failed = false;
for (const name of only) {
  const started = Date.now();
  try {
    await flows[name]();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.message}`);
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        await page.screenshot({ path: join(SCREENS, `FAILED-${name}.png`), fullPage: true }).catch(() => {});
      }
    }
    break;
  }
}
await browser.close();
console.log(`screenshots: ${screens.join(" ")}`);
process.exit(failed ? 1 : 0);
